// Many seeds in one process (label cpu): `--seeds 0-3` trains four runs side by side (every learner as one
// seed-batched learner, [S, P] parameters; and dynamite as two workers of one thread, the CPU's default) and each run directory equals
// that seed's run alone (with the same threads per run) bit for bit — metrics without the timing
// columns, summary, config, every checkpoint array — for every learner on the gridworld and on reacher; a batch
// stopped by SIGTERM leaves each run a checkpoint it resumes from, alone, to the same end; bad seed lists and
// --seeds where it cannot apply are refused naming the key and the value.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "host/train.h"
#include "tests/cli_run.h"
#include "tests/run_compare.h"
#include "tests/slurp.h"

namespace fs = std::filesystem;
using namespace dyn;

namespace {

class SeedBatch : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dyn_seeds_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// The run directories under `runs` by seed (names are <env>-<algo>-<seed>-<time>).
std::map<int, fs::path> runs_by_seed(const fs::path& runs) {
  std::map<int, fs::path> by_seed;
  for (const auto& e : fs::directory_iterator(runs)) {
    std::string name = e.path().filename().string();
    for (int dashes = 0; dashes < 2; ++dashes) name = name.substr(0, name.rfind('-'));  // drop -YYYYmmdd-HHMMSS
    by_seed[std::stoi(name.substr(name.rfind('-') + 1))] = e.path();
  }
  return by_seed;
}

// A run's config.toml without the line that names where the runs go.
std::string config_without_out_dir(const fs::path& run) {
  std::string text = slurp(run / "config.toml");
  const size_t at = text.find("out_dir = ");
  return at == std::string::npos ? text : text.erase(at, text.find('\n', at) - at);
}

void expect_same_run(const fs::path& batch, const fs::path& alone) {
  const std::vector<nlohmann::json> x = metrics_rows(batch), y = metrics_rows(alone);
  ASSERT_FALSE(x.empty());
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(x[i], y[i]) << "iteration " << i + 1;
  // the summaries without what times the run (seconds, fps, *_s) and the device line (it says "per run" in a batch)
  auto untimed = [](const fs::path& run) {
    nlohmann::json j = nlohmann::json::parse(slurp(run / "summary.json")), kept;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      if (k != "seconds" && k != "fps" && k != "device" && !(k.size() > 2 && k.substr(k.size() - 2) == "_s"))
        kept[k] = *it;
    }
    return kept;
  };
  EXPECT_EQ(untimed(batch), untimed(alone));
  EXPECT_EQ(config_without_out_dir(batch), config_without_out_dir(alone));
  EXPECT_GT(expect_same_arrays(batch / kCheckpointFile, alone / kCheckpointFile), 10u);
}

// Four seeds in one process (OpenMP 2 threads) against each seed alone: with run.seed_batch = batched as one
// seed-batched learner with both threads (so alone with 2 threads too); with threads as two runs at once, one thread
// each (alone: 1 thread).
void expect_batch_equals_runs_alone(const std::string& mode, const std::string& args, const fs::path& dir) {
  const bool batched = mode == "batched";
  const std::string alone_threads = batched ? "OMP_NUM_THREADS=2 " : "OMP_NUM_THREADS=1 ";
  const std::string all_args = args + " --set run.seed_batch=" + mode;
  fs::create_directories(dir);
  const fs::path batch = dir / "batch", alone = dir / "alone";
  const CliResult b = run_cli(all_args + " --device cpu --seeds 0-3 --set run.out_dir=" + batch.string() + " --out " +
                                  (dir / "batch.json").string(),
                              dir, "OMP_NUM_THREADS=2 ");
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_NE(b.err.find(batched ? "2 threads, one seed batch" : "1 thread per run, 2 runs at once"), std::string::npos)
      << b.err;
  EXPECT_NE(b.out.find("4 seeds in one process"), std::string::npos) << b.out;
  const nlohmann::json summaries = nlohmann::json::parse(slurp(dir / "batch.json"));
  ASSERT_EQ(summaries.size(), 4u);
  for (int s = 0; s < 4; ++s) {
    EXPECT_EQ(summaries[s]["seed"], s);
    const CliResult a =
        run_cli(all_args + " --device cpu --seed " + std::to_string(s) + " --set run.out_dir=" + alone.string(), dir,
                alone_threads);
    ASSERT_EQ(a.status, 0) << a.err;
  }
  const std::map<int, fs::path> x = runs_by_seed(batch), y = runs_by_seed(alone);
  ASSERT_EQ(x.size(), 4u);
  ASSERT_EQ(y.size(), 4u);
  for (int s = 0; s < 4; ++s) {
    SCOPED_TRACE("seed " + std::to_string(s));
    expect_same_run(x.at(s), y.at(s));
  }
  // the seeds are different runs (a batch that trained one seed four times would pass the comparison above)
  EXPECT_NE(metrics_rows(x.at(0)).back(), metrics_rows(x.at(1)).back());
}

const char* const kAlgos[] = {"ppo", "oracle", "rl2", "dynamite", "varibad", "contrabar"};

}  // namespace

// 3 iterations of each learner batched, and of dynamite (the most per-run state) as threads, an evaluation at the end
// (train.eval_carried_episodes = 5 included).
TEST_F(SeedBatch, GridworldEveryLearnerEqualsSeedsAlone) {
  std::vector<std::pair<std::string, std::string>> cases;
  for (const char* algo : kAlgos) cases.emplace_back(algo, "batched");
  cases.emplace_back("dynamite", "threads");
  for (const auto& [algo, mode] : cases) {
    SCOPED_TRACE(algo + " " + mode);
    expect_batch_equals_runs_alone(mode,
                                   "--env gridworld --algo " + algo +
                                       " --frames 2880 --set contrabar.hidden=32 --set contrabar.updates=2",
                                   dir_ / (algo + "-" + mode));
  }
}

// Every learner batched on reacher with 40-step episodes, so the belief and CPC models train on whole episodes
// within 6 iterations.
TEST_F(SeedBatch, ReacherEveryLearnerEqualsSeedsAlone) {
  for (const char* algo : kAlgos) {
    SCOPED_TRACE(algo);
    expect_batch_equals_runs_alone(
        "batched", std::string("--env reacher --algo ") + algo +
            " --envs 8 --frames 960 --set env.horizon=40 --set belief.replay_episodes=24 "
            "--set belief.batch_episodes=4 --set belief.elbo_samples=10 --set belief.decode_samples=10 "
            "--set contrabar.replay_episodes=24 --set contrabar.batch_episodes=4 --set contrabar.hidden=16 "
            "--set train.eval_envs=8 --set train.eval_episodes=1 --set train.eval_carried_episodes=2",
        dir_ / algo);
  }
}

namespace {

// A batch of `args` (4 seeds, OpenMP 2 threads) stopped by SIGTERM in iteration 3 against it uninterrupted: each
// run, resumed alone with resume_threads, ends where the uninterrupted batch's run ended.
void expect_stopped_batch_resumes_run_by_run(const std::string& args, const std::string& resume_threads,
                                             const fs::path& dir) {
  fs::create_directories(dir);
  const fs::path full = dir / "full", part = dir / "part";
  const CliResult a = run_cli(args + " --set run.out_dir=" + full.string(), dir, "OMP_NUM_THREADS=2 ");
  ASSERT_EQ(a.status, 0) << a.err;
  const CliResult stopped =
      run_cli(args + " --set run.out_dir=" + part.string(), dir, "OMP_NUM_THREADS=2 DYN_INJECT_SIGTERM=3 ");
  ASSERT_EQ(stopped.status, 143) << stopped.err;
  const std::map<int, fs::path> x = runs_by_seed(full), y = runs_by_seed(part);
  ASSERT_EQ(y.size(), 4u);
  for (const auto& [seed, run] : y) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    EXPECT_NE(stopped.err.find("seed " + std::to_string(seed) + ": resume: dynamite_gpu --resume " + run.string()),
              std::string::npos)
        << stopped.err;
    EXPECT_LT(metrics_rows(run).size(), 6u);
    const CliResult resumed = run_cli("--resume " + run.string() + " --device cpu", dir, resume_threads);
    ASSERT_EQ(resumed.status, 0) << resumed.err;
    expect_same_run(x.at(seed), run);
  }
}

}  // namespace

// SIGTERM in iteration 3 of a 4-seed batch: every run stops with a checkpoint (exit 143), and each, resumed alone,
// ends where the uninterrupted batch's run ended — runs of one thread each (dynamite on the CPU's default, threads),
// and the seed-batched learner's runs (dynamite batched: each run's checkpoint is its slice of the batch —
// policy and belief parameters, both Adams, the carried GRU state and conditioning input, its replay and sampling
// stream — read by a learner of its own).
TEST_F(SeedBatch, StoppedBatchResumesRunByRun) {
  expect_stopped_batch_resumes_run_by_run("--env gridworld --algo dynamite --frames 5760 --device cpu --seeds 0-3",
                                          "OMP_NUM_THREADS=1 ", dir_ / "threads");
  expect_stopped_batch_resumes_run_by_run(
      "--env reacher --algo dynamite --envs 8 --frames 1920 --set env.horizon=40 --set belief.replay_episodes=24 "
      "--set belief.batch_episodes=4 --set belief.elbo_samples=10 --set belief.decode_samples=10 "
      "--set train.eval_envs=8 --set train.eval_episodes=1 --set run.seed_batch=batched --device cpu --seeds 0-3",
      "OMP_NUM_THREADS=2 ", dir_ / "batched");
}

TEST_F(SeedBatch, BadSeedListsAndMisusesAreRefused) {
  auto refused = [&](const std::string& args, std::vector<std::string> needles) {
    const CliResult r = run_cli(args, dir_);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.err;
    for (const std::string& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << args << "\n" << r.err;
  };
  refused("--env gridworld --seeds 3-1", {"run.seeds", "'3-1'", "runs backwards", "e.g. 0-15"});
  refused("--env gridworld --seeds 0,1,1", {"run.seeds", "1 is listed twice"});
  refused("--env gridworld --seeds 0,x", {"run.seeds", "'x' is not a seed"});
  refused("--env gridworld --seeds 0-5000", {"run.seeds", "more than 4096 seeds"});
  refused("--env gridworld --seeds 4294967296", {"run.seeds", "past 4294967295"});
  refused("--env gridworld --seeds 0,", {"run.seeds", "'' is not a seed"});
  refused("--env gridworld --seed 3 --seeds 0-3", {"--seed and run.seeds = '0-3'", "one or the other"});
  refused("--env gridworld --policy oracle --seeds 0-3", {"run.seeds = '0-3'", "applies to training"});
  refused("--env gridworld --set run.seeds=0-1 --resume " + dir_.string(), {"--resume"});
}
