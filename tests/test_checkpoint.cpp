// Runs that survive (label cpu): a run stopped by SIGTERM and resumed equals an uninterrupted one bit for bit on the
// CPU (metrics without the timing columns, final evaluation, every array of the final checkpoint) for gridworld ppo,
// rl2 and dynamite, reacher varibad and scratch_itch contrabar with small replays; kill -9 at random times always
// leaves a loadable checkpoint and whole metrics lines, and the resumed run reaches the same end; the safetensors
// package (numpy) reads the checkpoint's parameters as the run holds them; --eval evaluates a checkpoint; a resume with
// another config is refused naming the keys.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "host/checkpoint.h"
#include "host/train.h"
#include "tests/cli_run.h"
#include "tests/run_compare.h"
#include "tests/slurp.h"

namespace fs = std::filesystem;
using namespace dyn;

namespace {

class Checkpoints : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dyn_ckpt_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The one run directory under `runs`.
  static fs::path run_dir(const fs::path& runs) { return fs::directory_iterator(runs)->path(); }
  fs::path dir_;
};

struct Case {
  std::string name, args;
};

const Case kResumeCases[] = {
    {"gridworld-ppo", "--env gridworld --algo ppo --frames 11520"},
    {"gridworld-rl2", "--env gridworld --algo rl2 --frames 11520"},
    {"gridworld-dynamite", "--env gridworld --algo dynamite --frames 11520"},
    // a physics env with a small replay: 8 envs, 40-step episodes over two 20-step collects, a 24-episode ring
    {"reacher-varibad",
     "--env reacher --algo varibad --envs 8 --frames 1920 --set env.horizon=40 --set belief.replay_episodes=24 "
     "--set belief.batch_episodes=4 --set belief.elbo_samples=10 --set belief.decode_samples=10 "
     "--set train.eval_envs=8 --set train.eval_episodes=1"},
    // ContraBAR (CPC model, its Adam and lr schedule, its replay) on scratch_itch, small
    {"scratch_itch-contrabar",
     "--env scratch_itch --algo contrabar --envs 8 --frames 1920 --set env.horizon=40 --set train.rollout_steps=20 "
     "--set contrabar.replay_episodes=24 --set contrabar.batch_episodes=4 --set contrabar.hidden=16 "
     "--set contrabar.lr_halve_after=5 --set train.eval_envs=8 --set train.eval_episodes=1"},
};

}  // namespace

// 12 iterations with an evaluation every 3 and a checkpoint every 4; the interrupted run gets SIGTERM in iteration 6
// (a checkpoint there, exit 143) and is resumed to the end.
TEST_F(Checkpoints, ResumeIsBitIdentical) {
  for (const Case& c : kResumeCases) {
    SCOPED_TRACE(c.name);
    const std::string common = c.args + " --device cpu --set train.eval_interval=3 --set train.checkpoint_interval=4";
    const fs::path full = dir_ / (c.name + "-full"), part = dir_ / (c.name + "-part");
    const CliResult a = run_cli(common + " --set run.out_dir=" + full.string(), dir_);
    ASSERT_EQ(a.status, 0) << a.err;
    const CliResult stopped = run_cli(common + " --set run.out_dir=" + part.string(), dir_, "DYN_INJECT_SIGTERM=6 ");
    ASSERT_EQ(stopped.status, 143) << stopped.err;
    EXPECT_NE(stopped.err.find("resume: dynamite_gpu --resume " + run_dir(part).string()), std::string::npos)
        << stopped.err;
    EXPECT_EQ(metrics_rows(run_dir(part)).size(), 6u);
    const CliResult resumed = run_cli("--resume " + run_dir(part).string() + " --device cpu", dir_);
    ASSERT_EQ(resumed.status, 0) << resumed.err;
    const std::vector<nlohmann::json> x = metrics_rows(run_dir(full)), y = metrics_rows(run_dir(part));
    ASSERT_EQ(x.size(), 12u);
    ASSERT_EQ(y.size(), 12u);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i], y[i]) << "iteration " << i + 1;
    const nlohmann::json sx = nlohmann::json::parse(slurp(run_dir(full) / "summary.json")),
                         sy = nlohmann::json::parse(slurp(run_dir(part) / "summary.json"));
    EXPECT_EQ(sx["eval_return"], sy["eval_return"]);
    EXPECT_EQ(sx["frames"], sy["frames"]);
    EXPECT_GT(expect_same_arrays(run_dir(full) / kCheckpointFile, run_dir(part) / kCheckpointFile), 20u);
  }
}

// kill -9 at random times, again and again: after each kill the run directory holds a checkpoint that loads and
// metrics files of whole lines; resuming after each reaches the uninterrupted run's end.
TEST_F(Checkpoints, SurvivesKillNineAtRandomTimes) {
  const std::string common =
      "--env gridworld --algo dynamite --frames 28800 --device cpu --set train.eval_interval=5 "
      "--set train.checkpoint_interval=2";
  const fs::path full = dir_ / "full", part = dir_ / "part";
  ASSERT_EQ(run_cli(common + " --set run.out_dir=" + full.string(), dir_).status, 0);
  std::mt19937 rng(5);
  int kills = 0;
  std::string args = common + " --set run.out_dir=" + part.string();
  for (int attempt = 0; attempt < 12; ++attempt) {
    const pid_t pid = fork();
    if (pid == 0) {
      const std::string cmd = std::string(DYN_BIN) + " " + args + " >/dev/null 2>" + (dir_ / "stderr").string();
      execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // the first run is killed once its first checkpoint exists; every run at a random time
    if (attempt == 0)
      for (int i = 0;
           i < 600 && !(fs::exists(part) && !fs::is_empty(part) && fs::exists(run_dir(part) / kCheckpointFile)); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 900)(rng)));
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) != pid) {  // still running: kill it
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
    if (WIFEXITED(status)) {  // it finished before the kill
      ASSERT_EQ(WEXITSTATUS(status), 0) << slurp(dir_ / "stderr");
      break;
    }
    ASSERT_TRUE(WIFSIGNALED(status)) << "attempt " << attempt;
    ++kills;
    const fs::path run = run_dir(part);
    ASSERT_TRUE(fs::exists(run / kCheckpointFile)) << "no checkpoint after kill " << kills;
    EXPECT_NO_THROW(read_checkpoint((run / kCheckpointFile).string())) << "kill " << kills;
    for (const char* f : {"metrics.jsonl", "metrics.csv"}) {
      const std::string text = slurp(run / f);
      EXPECT_TRUE(text.empty() || text.back() == '\n') << f << " ends in a partial line after kill " << kills;
    }
    for (const auto& e : fs::directory_iterator(run))
      EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos)
          << "a temporary file is left after kill " << kills << " (harmless, but it should be cleaned)";
    args = "--resume " + run.string() + " --device cpu";
  }
  EXPECT_GE(kills, 5) << "too few kills landed before the run finished";
  if (fs::exists(run_dir(part) / kCheckpointFile) && !fs::exists(run_dir(part) / "summary.json")) {
    const CliResult last = run_cli("--resume " + run_dir(part).string() + " --device cpu", dir_);  // to the end
    ASSERT_EQ(last.status, 0) << last.err;
  }
  const std::vector<nlohmann::json> x = metrics_rows(run_dir(full)), y = metrics_rows(run_dir(part));
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i], y[i]) << "iteration " << i + 1;
  expect_same_arrays(run_dir(full) / kCheckpointFile, run_dir(part) / kCheckpointFile);
  std::printf("[kill -9] %d kills survived\n", kills);
}

// The safetensors package (numpy backend) reads the checkpoint: every array's name, shape and values equal the run's.
TEST_F(Checkpoints, SafetensorsPackageReadsIt) {
  const fs::path runs = dir_ / "runs";
  ASSERT_EQ(
      run_cli("--env gridworld --algo dynamite --frames 2880 --device cpu --set run.out_dir=" + runs.string(), dir_)
          .status,
      0);
  const fs::path file = run_dir(runs) / kCheckpointFile;
  const fs::path script = dir_ / "read.py", out = dir_ / "read.json";
  std::ofstream(script)
      << "import json, sys\n"
         "from safetensors.numpy import load_file\n"
         "arrays = load_file(sys.argv[1])\n"
         "json.dump({k: {'dtype': str(v.dtype), 'shape': list(v.shape), 'values': "
         "v.astype('float64').ravel().tolist()} for k, v in arrays.items()}, open(sys.argv[2], 'w'))\n";
  ASSERT_EQ(std::system(("python3 " + script.string() + " " + file.string() + " " + out.string()).c_str()), 0)
      << "python3 with safetensors and numpy (scripts/setup installs them)";
  const nlohmann::json py = nlohmann::json::parse(slurp(out));
  const Checkpoint c = read_checkpoint(file.string());
  ASSERT_EQ(py.size(), c.arrays.size());
  int params = 0;
  for (const auto& [name, a] : c.arrays) {
    ASSERT_TRUE(py.contains(name)) << name;
    EXPECT_EQ(py[name]["shape"].get<std::vector<int64_t>>(), a.shape) << name;
    if (a.dtype != DType::f32) continue;
    const std::vector<double> v = py[name]["values"].get<std::vector<double>>();
    const float* ours = reinterpret_cast<const float*>(a.bytes.data());
    ASSERT_EQ(v.size(), a.bytes.size() / 4) << name;
    for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(float(v[i]), ours[i]) << name << "[" << i << "]";
    EXPECT_EQ(py[name]["dtype"], "float32") << name;
    params += name.find(".params.") != std::string::npos;
  }
  EXPECT_GT(params, 10) << "the networks' layers are named arrays";
}

// --eval: a checkpoint's policy evaluated without training gives the run's final evaluation; a resume with another
// config is refused naming the keys (--device auto is the run's device); a file that is not a checkpoint is refused.
TEST_F(Checkpoints, EvalAndRefusals) {
  const fs::path runs = dir_ / "runs";
  ASSERT_EQ(
      run_cli("--env gridworld --algo ppo --frames 4800 --device cpu --set run.out_dir=" + runs.string(), dir_).status,
      0);
  const fs::path run = run_dir(runs);
  const fs::path out = dir_ / "eval.json";
  const CliResult e =
      run_cli("--eval " + (run / kCheckpointFile).string() + " --device cpu --out " + out.string(), dir_);
  ASSERT_EQ(e.status, 0) << e.err;
  const nlohmann::json summary = nlohmann::json::parse(slurp(run / "summary.json"));
  const nlohmann::json evaluated = nlohmann::json::parse(slurp(out));
  EXPECT_EQ(evaluated["eval_return"], summary["eval_return"]);
  // Fig. 6: five consecutive episodes with the state carried, in the run's summary and --eval's, the same figures
  ASSERT_EQ(summary["eval_carried"].size(), 5u) << summary.dump();
  EXPECT_EQ(evaluated["eval_carried"], summary["eval_carried"]);
  EXPECT_EQ(summary["eval_carried"][4]["episode"], 5);
  EXPECT_EQ(summary["eval_carried"][0]["episodes"], 256) << "one episode of each of train.eval_envs";
  ASSERT_EQ(summary["eval_per_episode"].size(), 4u) << "train.eval_episodes";

  // --trace: the first 4 eval envs' steps, one JSON object each
  const fs::path trace = dir_ / "trace.jsonl";
  const CliResult traced = run_cli("--eval " + (run / kCheckpointFile).string() + " --trace " + trace.string(), dir_);
  ASSERT_EQ(traced.status, 0) << traced.err;
  std::istringstream lines(slurp(trace));
  std::string line;
  int records = 0;
  while (std::getline(lines, line)) {
    const nlohmann::json r = nlohmann::json::parse(line);
    EXPECT_TRUE(r.contains("reward") && r.contains("session_id") && r.contains("latent")) << line;
    EXPECT_LT(int(r["env"]), 4);
    ++records;
  }
  EXPECT_EQ(records, 4 * 4 * 60) << "4 envs x train.eval_episodes 4 x H 60";
  const CliResult stray = run_cli("--env gridworld --algo ppo --trace " + trace.string(), dir_);
  EXPECT_EQ(stray.status, 2);
  EXPECT_NE(stray.err.find("--trace"), std::string::npos) << stray.err;

  const CliResult differ = run_cli("--resume " + run.string() + " --set train.lr=0.001 --envs 8", dir_);
  EXPECT_EQ(differ.status, 2);
  EXPECT_NE(differ.err.find("train.lr"), std::string::npos) << differ.err;
  EXPECT_NE(differ.err.find("run.envs"), std::string::npos) << differ.err;
  // --device auto (what a campaign passes) is the run's own device; another device is a different config
  const CliResult same_device = run_cli("--resume " + run.string() + " --device auto --frames 9600", dir_);
  EXPECT_EQ(same_device.status, 0) << same_device.err;
  const CliResult other_device = run_cli("--resume " + run.string() + " --device cuda", dir_);
  EXPECT_EQ(other_device.status, 2);
  EXPECT_NE(other_device.err.find("run.device (run: cpu, now: cuda)"), std::string::npos) << other_device.err;

  std::ofstream(dir_ / "junk.safetensors") << "not a checkpoint";
  const CliResult junk = run_cli("--eval " + (dir_ / "junk.safetensors").string(), dir_);
  EXPECT_EQ(junk.status, 2);
  EXPECT_NE(junk.err.find("not a valid safetensors file"), std::string::npos) << junk.err;
}
