// Data-parallel training under `mpirun -np 2` (OpenMPI, oversubscribed on this machine's cores): 2 ranks × 8 envs
// train as 1 rank × 16 envs to float rounding (metrics, evaluation, parameters) for the learners whose updates see
// only the rollout (ppo, oracle, rl2; gridworld and the Gaussian head on reacher); the belief learners keep identical
// parameters on every rank (checked by the run's hash every iteration, and here bit for bit); a stop signal on one
// rank stops both at the same checkpoint, kill -9 of one rank ends the job with mpirun's message and leaves
// checkpoints a 2-rank resume finishes from; bad setups are refused with the key, the value and what is allowed.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "kernels/backend.h"
#include "tests/cli_run.h"
#include "tests/run_compare.h"

namespace fs = std::filesystem;

namespace {

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    // OpenMPI refuses root without these (CI and these machines run as root); oversubscribed: 2 ranks, 2 cores
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    ::setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    dir_ = fs::temp_directory_path() / ("dyn_dp_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    // a job a failed assertion left running (the stop test) ends with the test
    for (const pid_t pid : ranks_writing_to(dir_)) ::kill(pid, SIGKILL);
    if (!HasFailure()) fs::remove_all(dir_);
  }
  // The dynamite_gpu processes whose command line names `path` (rank `rank` only when rank ≥ 0: from its environ).
  static std::vector<pid_t> ranks_writing_to(const fs::path& path, int rank = -1) {
    std::vector<pid_t> found;
    for (const auto& e : fs::directory_iterator("/proc")) {
      const std::string name = e.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      const std::string cmdline = slurp(e.path() / "cmdline"), comm = slurp(e.path() / "comm");
      if (comm != "dynamite_gpu\n" || cmdline.find(path.string()) == std::string::npos) continue;
      if (rank >= 0) {
        std::string env = slurp(e.path() / "environ");
        std::replace(env.begin(), env.end(), '\0', '\n');
        if (env.find("\nOMPI_COMM_WORLD_RANK=" + std::to_string(rank) + "\n") == std::string::npos) continue;
      }
      found.push_back(pid_t(std::stoi(name)));
    }
    return found;
  }
  // dynamite_gpu under mpirun with `ranks` ranks (1: alone), one OpenMP thread each.
  CliResult run(int ranks, const std::string& args, const std::string& log) const {
    const fs::path d = dir_ / log;
    fs::create_directories(d);
    const std::string prefix =
        "OMP_NUM_THREADS=1 " +
        (ranks > 1 ? std::string(DYN_MPIEXEC) + " -np " + std::to_string(ranks) + " --oversubscribe " : std::string());
    return run_cli(args, d, prefix);
  }
  // The one run directory under out.
  static fs::path run_dir(const fs::path& out) {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(out))
      if (e.is_directory()) dirs.push_back(e.path());
    EXPECT_EQ(dirs.size(), 1u) << out;
    return dirs.empty() ? out : dirs[0];
  }
  static std::string common(const std::string& env, const std::string& algo, int64_t frames) {
    return "--env " + env + " --algo " + algo + " --frames " + std::to_string(frames) +
           " --set run.envs=16 --set train.shuffle=per_env --set train.eval_envs=32 --set run.hash_interval=1"
           " --set train.eval_carried_episodes=0";
  }
  fs::path dir_;
};

// |a − b| within float rounding carried through a few updates.
void expect_close(double a, double b, const std::string& what) {
  if (std::isnan(a) && std::isnan(b)) return;
  EXPECT_LE(std::fabs(a - b), 1e-5 + 1e-3 * std::fabs(b)) << what << ": " << a << " vs " << b;
}

void expect_same_run(const fs::path& two, const fs::path& one, const std::string& what) {
  const auto a = metrics_rows(two), b = metrics_rows(one);
  ASSERT_EQ(a.size(), b.size()) << what;
  ASSERT_GE(a.size(), 2u) << what;
  for (size_t i = 0; i < a.size(); ++i)
    for (auto it = b[i].begin(); it != b[i].end(); ++it) {
      ASSERT_TRUE(a[i].contains(it.key())) << what << " " << it.key();
      if (it->is_number())
        expect_close(a[i][it.key()].get<double>(), it->get<double>(),
                     what + " iteration " + std::to_string(i + 1) + " " + it.key());
    }
  const dyn::Checkpoint x = dyn::read_checkpoint((two / "checkpoint.safetensors").string());
  const dyn::Checkpoint y = dyn::read_checkpoint((one / "checkpoint.safetensors").string());
  int compared = 0;
  for (const auto& [name, arr] : y.arrays) {
    if (name.find("params") == std::string::npos || arr.dtype != dyn::DType::f32) continue;
    const auto it = x.arrays.find(name);
    ASSERT_NE(it, x.arrays.end()) << what << " " << name;
    ASSERT_EQ(it->second.bytes.size(), arr.bytes.size()) << name;
    const size_t n = arr.bytes.size() / 4;
    std::vector<float> p(n), q(n);
    std::memcpy(p.data(), it->second.bytes.data(), n * 4);
    std::memcpy(q.data(), arr.bytes.data(), n * 4);
    // relative L2 distance: Adam's steps are ±lr whatever the gradient's size, so where a gradient is rounding
    // noise single elements drift apart by a few lr; the whole array stays within float rounding of the other
    double diff = 0, norm = 0;
    for (size_t k = 0; k < n; ++k) {
      diff += double(p[k] - q[k]) * double(p[k] - q[k]);
      norm += double(q[k]) * double(q[k]);
    }
    EXPECT_LE(std::sqrt(diff), 1e-4 * std::sqrt(norm) + 1e-7) << what << " " << name;
    ++compared;
  }
  EXPECT_GT(compared, 4) << what;
  // the envs differ: rank 0 holds envs 0..7 of the 16
  EXPECT_NE(x.arrays.at("env.state").shape, y.arrays.at("env.state").shape) << what;
}

}  // namespace

TEST_F(DataParallel, TwoRanksOfEightEnvsTrainAsOneRankOfSixteen) {
  const std::vector<std::pair<std::string, std::string>> runs = {
      {"gridworld", "ppo"}, {"gridworld", "oracle"}, {"gridworld", "rl2"}, {"reacher", "ppo"}};
  for (const auto& [env, algo] : runs) {
    const std::string what = env + " " + algo;
    // gridworld 5 iterations; reacher 2 (after ~5, the arm's dynamics have amplified float rounding in the actions
    // to 1e-3 of the parameters; after 2 it is 1e-6)
    const int64_t frames = env == "gridworld" ? 16 * 60 * 5 : 16 * 20 * 2;
    const fs::path two = dir_ / ("two-" + env + "-" + algo), one = dir_ / ("one-" + env + "-" + algo);
    const CliResult r2 = run(2, common(env, algo, frames) + " --set run.out_dir=" + two.string(), "log2-" + algo);
    ASSERT_EQ(r2.status, 0) << what << "\n" << r2.err;
    EXPECT_NE(r2.out.find("2 data-parallel ranks"), std::string::npos) << r2.out;
    const CliResult r1 = run(1, common(env, algo, frames) + " --set run.out_dir=" + one.string(), "log1-" + algo);
    ASSERT_EQ(r1.status, 0) << what << "\n" << r1.err;
    const fs::path d2 = run_dir(two), d1 = run_dir(one);
    EXPECT_TRUE(fs::exists(d2 / "checkpoint.rank1.safetensors")) << what;
    EXPECT_FALSE(fs::exists(d1 / "checkpoint.rank1.safetensors")) << what;
    expect_same_run(d2, d1, what);
    // one report, from rank 0
    const size_t first = r2.out.find("eval return");
    EXPECT_NE(first, std::string::npos);
    EXPECT_EQ(r2.out.find("eval return", first + 1), std::string::npos) << r2.out;
    // --eval of rank 0's checkpoint, in one process, repeats the run's final evaluation
    const CliResult ev = run(1, "--eval " + (d2 / "checkpoint.safetensors").string(), "eval-" + algo);
    ASSERT_EQ(ev.status, 0) << ev.err;
    const std::string line = r2.out.substr(first, r2.out.find('\n', first) - first);
    EXPECT_NE(ev.out.find(line), std::string::npos) << line << "\n" << ev.out;
  }
}

// DynaMITE-RL and ContraBAR replay their own rank's episodes (an R× larger belief batch): not the 1-rank run, but the
// ranks' parameters, optimiser state and normalisers are the same bits (the run checked it every iteration, too).
TEST_F(DataParallel, BeliefLearnersKeepTheSameParametersOnEveryRank) {
  for (const std::string algo : {"dynamite", "contrabar"}) {
    const fs::path out = dir_ / algo;
    const std::string small = algo == "contrabar" ? " --set contrabar.hidden=16 --set contrabar.updates=2" : "";
    const CliResult r =
        run(2, common("gridworld", algo, 16 * 60 * 4) + small + " --set run.out_dir=" + out.string(), algo);
    ASSERT_EQ(r.status, 0) << algo << "\n" << r.err;
    const fs::path d = run_dir(out);
    const dyn::Checkpoint a = dyn::read_checkpoint((d / "checkpoint.safetensors").string());
    const dyn::Checkpoint b = dyn::read_checkpoint((d / "checkpoint.rank1.safetensors").string());
    int shared = 0;
    for (const auto& [name, arr] : a.arrays)
      if (name.find("params") != std::string::npos || name.find("adam") != std::string::npos) {
        EXPECT_EQ(arr.bytes, b.arrays.at(name).bytes) << algo << " " << name;
        ++shared;
      }
    EXPECT_GT(shared, 6) << algo;
    EXPECT_NE(a.arrays.at("env.state").bytes, b.arrays.at("env.state").bytes) << algo << ": each rank its own envs";
  }
}

// SIGTERM to one rank: both finish the iteration, write their checkpoints at the same iteration and exit 143; the
// 2-rank resume then runs to the end. kill -9 of one rank: mpirun ends the job and says which rank died; the
// checkpoints left behind resume; a 1-rank resume of them is refused, naming the ranks that wrote them.
TEST_F(DataParallel, AStoppedOrKilledRankStopsTheJobAndLeavesCheckpointsThatResume) {
  const std::string args = common("gridworld", "ppo", 400000) + " --set train.checkpoint_interval=3";
  for (const int sig : {SIGTERM, SIGKILL}) {
    const fs::path out = dir_ / ("sig" + std::to_string(sig));
    fs::create_directories(out);
    const fs::path log = dir_ / ("log-sig" + std::to_string(sig));
    fs::create_directories(log);
    // in the background, the job's exit status into `status` when it ends
    const std::string cmd = "((OMP_NUM_THREADS=1 " + std::string(DYN_MPIEXEC) + " -np 2 --oversubscribe " +
                            std::string(DYN_BIN) + " " + args + " --set run.out_dir=" + out.string() + ") >" +
                            (log / "stdout").string() + " 2>" + (log / "stderr").string() + "; echo $? > " +
                            (log / "status").string() + ") &";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    // wait for both ranks' first checkpoint (rank 0's may land after rank 1's)
    fs::path d;
    for (int i = 0; i < 600 && d.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      for (const auto& e : fs::directory_iterator(out))
        if (fs::exists(e.path() / "checkpoint.rank1.safetensors") && fs::exists(e.path() / "checkpoint.safetensors"))
          d = e.path();
    }
    ASSERT_FALSE(d.empty()) << "no checkpoint within 60 s";
    const std::vector<pid_t> rank1 = ranks_writing_to(out, 1);  // mpirun tells each rank its number
    ASSERT_EQ(rank1.size(), 1u);
    ASSERT_EQ(::kill(rank1[0], sig), 0);
    for (int i = 0; i < 600 && !fs::exists(log / "status"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(fs::exists(log / "status")) << "the job did not end within 60 s of the signal";
    const int status = std::atoi(slurp(log / "status").c_str());
    const std::string err = slurp(log / "stderr");
    EXPECT_NE(status, 0) << err;
    if (sig == SIGTERM) {
      EXPECT_NE(err.find("stopped by SIGTERM"), std::string::npos) << err;
      const dyn::Checkpoint a = dyn::read_checkpoint((d / "checkpoint.safetensors").string());
      const dyn::Checkpoint b = dyn::read_checkpoint((d / "checkpoint.rank1.safetensors").string());
      EXPECT_EQ(a.metadata.at("iteration"), b.metadata.at("iteration")) << "both ranks stopped at one iteration";
    } else {
      EXPECT_NE(err.find("rank 1"), std::string::npos) << err;
      EXPECT_NE(err.find("signal 9"), std::string::npos) << err;
      const CliResult alone = run(1, "--resume " + d.string() + " --frames 9600", "alone" + std::to_string(sig));
      EXPECT_NE(alone.status, 0);
      EXPECT_NE(alone.err.find("written by 2 data-parallel rank(s)"), std::string::npos) << alone.err;
    }
    // on to 4 iterations past rank 0's checkpoint (a fast machine may be many iterations past the first one by the
    // time the signal lands)
    const int64_t stopped_at =
        std::stoll(dyn::read_checkpoint((d / "checkpoint.safetensors").string()).metadata.at("iteration"));
    const int64_t per_iteration = metrics_rows(d).front()["frames"].get<int64_t>();
    const int64_t target = (stopped_at + 4) * per_iteration;
    const CliResult resumed =
        run(2, "--resume " + d.string() + " --frames " + std::to_string(target), "resume" + std::to_string(sig));
    // after a kill -9 the ranks' last checkpoints may be of different iterations (one was written, the other not)
    if (resumed.status != 0) {
      EXPECT_NE(resumed.err.find("different iterations"), std::string::npos) << resumed.err;
      continue;
    }
    EXPECT_NE(resumed.out.find("eval return"), std::string::npos) << resumed.out;
    EXPECT_EQ(metrics_rows(d).back()["frames"].get<int64_t>(), target);
  }
}

TEST_F(DataParallel, SetupsThatCannotSplitAreRefused) {
  const std::string base = "--env gridworld --algo ppo --frames 960 --set run.out_dir=" + (dir_ / "runs").string();
  CliResult r = run(2, base + " --set run.envs=16", "global");
  EXPECT_NE(r.status, 0);
  // run.device = auto: without a GPU the CPU-fallback notice comes once per job, not once per rank
  size_t notices = 0;
  for (size_t at = r.err.find("no CUDA device found"); at != std::string::npos;
       at = r.err.find("no CUDA device found", at + 1))
    ++notices;
  EXPECT_EQ(notices, dyn::cuda_device_count() == 0 ? 1u : 0u) << r.err;
  EXPECT_NE(r.err.find("train.shuffle = \"global\" with 2 data-parallel ranks: allowed \"per_env\""), std::string::npos)
      << r.err;
  r = run(2, base + " --set run.envs=15 --set train.shuffle=per_env", "odd");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("run.envs = 15 does not split over 2 data-parallel ranks"), std::string::npos) << r.err;
  r = run(2, base + " --set run.envs=16 --set train.shuffle=per_env --seeds 0-1", "seeds");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("with 2 data-parallel ranks: allowed one seed"), std::string::npos) << r.err;
  r = run(2,
          "--env gridworld --algo rl2 --frames 960 --set run.envs=12 --set train.shuffle=per_env --set "
          "train.minibatches=4 --set run.out_dir=" +
              (dir_ / "runs").string(),
          "rl2");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("train.minibatches = 4 with 2 data-parallel ranks: allowed a divisor of each rank's 6 envs"),
            std::string::npos)
      << r.err;
}
