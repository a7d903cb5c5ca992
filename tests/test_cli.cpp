// The dynamite_gpu command line: every bad-input path gives one clear message naming the key, the value and
// what is allowed, exit status 2, nothing on stdout and no output file; a good run prints the summary.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "kernels/backend.h"
#include "tests/cli_run.h"
#include "tests/slurp.h"

namespace fs = std::filesystem;

namespace {

using Result = CliResult;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dyn_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result run(const std::string& args) { return run_cli(args, dir_); }

  // Asserts a bad-input failure whose message contains every fragment.
  void expect_bad_input(const std::string& args, std::initializer_list<std::string> fragments) {
    const fs::path json = dir_ / "out.json";
    const Result r = run(args + " --out " + json.string());
    EXPECT_EQ(r.status, 2) << args << "\n" << r.err;
    EXPECT_EQ(r.out, "") << "no partial output on stdout for: " << args;
    EXPECT_FALSE(fs::exists(json)) << args;
    EXPECT_FALSE(fs::exists(dir_ / "out.json.tmp")) << args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    for (const std::string& f : fragments)
      EXPECT_NE(r.err.find(f), std::string::npos) << "'" << f << "' not in: " << r.err;
  }

  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }

  fs::path dir_;
};

}  // namespace

TEST_F(Cli, ZeroEnvs) { expect_bad_input("--env gridworld --envs 0", {"--envs", "run.envs", "0", "[1, 67108864]"}); }

TEST_F(Cli, NonIntegerEnvs) {
  expect_bad_input("--env gridworld --envs 12x", {"--envs", "run.envs", "'12x'", "an integer"});
}

TEST_F(Cli, SessionsAboveHorizon) {
  expect_bad_input("--env gridworld --set env.sessions=61", {"env.sessions", "61", "env.horizon = 60"});
  expect_bad_input("--env gridworld --set env.horizon=3",
                   {"env.sessions", "4", "env.horizon = 3", "--set env.horizon=3"});
}

TEST_F(Cli, MissingConfigFile) {
  expect_bad_input("--env gridworld --config /nonexistent/x.toml", {"--config", "/nonexistent/x.toml", "No such file"});
}

TEST_F(Cli, UnknownKeyInSet) {
  expect_bad_input("--env gridworld --set env.horizn=30", {"env.horizn", "unknown config key", "env.horizon"});
}

TEST_F(Cli, SetWithoutEquals) { expect_bad_input("--env gridworld --set env.horizon", {"--set", "key=value"}); }

TEST_F(Cli, WrongTypeInSet) {
  expect_bad_input("--env gridworld --set env.reset_on_switch=maybe",
                   {"env.reset_on_switch", "'maybe'", "true or false"});
  expect_bad_input("--env gridworld --set env.switch_prob=1.5", {"env.switch_prob", "1.5", "[0, 1]"});
}

TEST_F(Cli, BadChoice) {
  expect_bad_input("--env gridworld --policy greedy", {"--policy", "run.policy", "greedy", "random, oracle"});
  expect_bad_input("--env gridworld --device tpu", {"--device", "run.device", "tpu", "auto, cpu, cuda"});
  expect_bad_input("--env gridworld --set env.session_model=geometric",
                   {"env.session_model", "poisson, bernoulli, fixed"});
}

TEST_F(Cli, UnknownEnv) { expect_bad_input("--env mujoco_ant", {"env.name", "mujoco_ant", "gridworld"}); }

TEST_F(Cli, MissingEnv) { expect_bad_input("--envs 4", {"--env is required", "gridworld"}); }

TEST_F(Cli, SeedOutOfRange) {
  expect_bad_input("--env gridworld --seed 4294967296", {"--seed", "run.seed", "4294967296", "[0, 4294967295]"});
  expect_bad_input("--env gridworld --seed -1", {"--seed", "-1"});
}

TEST_F(Cli, UnknownKeyInConfigFile) {
  write("bad.toml", "[env]\nhorizon = 30\nwindspeed = 3\n");
  expect_bad_input("--env gridworld --config " + (dir_ / "bad.toml").string(),
                   {"bad.toml", "env.windspeed", "unknown config key"});
}

TEST_F(Cli, WrongTypeInConfigFile) {
  write("bad.toml", "[env]\nhorizon = \"sixty\"\n");
  expect_bad_input("--env gridworld --config " + (dir_ / "bad.toml").string(),
                   {"bad.toml", "env.horizon", "string", "an integer"});
}

TEST_F(Cli, TomlSyntaxError) {
  write("bad.toml", "[env\nhorizon = 3\n");
  expect_bad_input("--env gridworld --config " + (dir_ / "bad.toml").string(), {"bad.toml", "parse error", "line 1"});
}

TEST_F(Cli, UnknownFlag) { expect_bad_input("--env gridworld --bogus", {"--bogus"}); }

TEST_F(Cli, CudaWithoutDevice) {
  if (dyn::cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  expect_bad_input("--env gridworld --device cuda", {"--device cuda", "no CUDA device"});
}

TEST_F(Cli, GoodRunPrintsSummaryAndWritesJson) {
  const fs::path json = dir_ / "summary.json";
  const Result r =
      run("--env gridworld --envs 512 --episodes 4 --policy oracle --device cpu --seed 5 --out " + json.string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("device: cpu"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("env steps/s:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("return:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sessions: 4.000"), std::string::npos) << r.out;
  ASSERT_TRUE(fs::exists(json));
  EXPECT_FALSE(fs::exists(dir_ / "summary.json.tmp"));
  const nlohmann::json j = nlohmann::json::parse(slurp(json));
  EXPECT_EQ(j["episodes"], 2048);
  EXPECT_EQ(j["seed"], 5);
  EXPECT_NEAR(j["mean_return"].get<double>(), 44.4, 1.0);
}

TEST_F(Cli, AutoDeviceWithoutGpuGivesOneLineNotice) {
  if (dyn::cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  const Result r = run("--env gridworld --envs 64 --episodes 1 --policy random");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "notice: no CUDA device found; running on the CPU backend\n");
}

TEST_F(Cli, ConfigFileAndSetLayerInOrder) {
  write("mine.toml", "[env]\nname = \"gridworld\"\nhorizon = 30\nsessions = 2\n[run]\nepisodes = 3\n");
  const Result r = run("--config " + (dir_ / "mine.toml").string() + " --set run.episodes=2 --envs 8 --print-config");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("horizon = 30"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sessions = 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("episodes = 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("envs = 8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("goal_stay_prob = 0.2"), std::string::npos) << "built-in values fill the rest: " << r.out;
}

TEST_F(Cli, TrainingWritesRunDirectory) {
  const fs::path out = dir_ / "runs";
  const Result r =
      run("--env gridworld --algo ppo --frames 2000 --device cpu --set train.eval_interval=1 --set run.out_dir=" +
          out.string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("eval return:"), std::string::npos) << r.out;
  ASSERT_TRUE(fs::exists(out));
  const fs::path run_dir = fs::directory_iterator(out)->path();
  EXPECT_EQ(run_dir.filename().string().rfind("gridworld-ppo-0-", 0), 0u) << run_dir;
  for (const char* f : {"config.toml", "metrics.jsonl", "metrics.csv", "summary.json"})
    EXPECT_TRUE(fs::exists(run_dir / f)) << f;
  // 2000 frames at 16 envs × 60 steps = 3 iterations: 3 JSON rows, a CSV header and 3 rows; each row's evaluation
  // (train.eval_interval = 1) a finite number (NaN is written as null), frames rising by one iteration's 960
  std::ifstream jsonl(run_dir / "metrics.jsonl");
  int rows = 0;
  int64_t last_frames = 0;
  for (std::string line; std::getline(jsonl, line); ++rows) {
    const nlohmann::json j = nlohmann::json::parse(line);
    ASSERT_TRUE(j.contains("eval_return")) << line;
    ASSERT_TRUE(j["eval_return"].is_number()) << line;
    EXPECT_TRUE(std::isfinite(j["eval_return"].get<double>())) << line;
    EXPECT_GT(j["fps"].get<double>(), 0.0) << line;
    EXPECT_EQ(j["frames"].get<int64_t>(), last_frames + 960) << line;
    last_frames = j["frames"].get<int64_t>();
  }
  EXPECT_EQ(rows, 3);
  const std::string csv = slurp(run_dir / "metrics.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);
  EXPECT_EQ(nlohmann::json::parse(slurp(run_dir / "summary.json"))["frames"], 2880);
}

TEST_F(Cli, Rl2MinibatchesMustDivideEnvs) {
  expect_bad_input("--env gridworld --algo rl2 --envs 10", {"train.minibatches", "a divisor of run.envs = 10"});
}

TEST_F(Cli, BadAlgo) {
  expect_bad_input("--env gridworld --algo sac", {"--algo", "run.algo", "none, ppo, oracle, rl2, dynamite, varibad"});
}

TEST_F(Cli, DynamiteAblationRunNamesItselfAndLogsBeliefMetrics) {
  const fs::path out = dir_ / "runs";
  // 4 iterations: the replay holds 16 episodes after each, so belief steps (25 episodes) start at the second
  const Result r =
      run("--env gridworld --algo dynamite --no-consistency --oracle-sessions --frames 3840 --device cpu "
          "--set train.eval_interval=2 --set train.eval_envs=8 --set run.out_dir=" +
          out.string() + " --out " + (dir_ / "summary.json").string());
  ASSERT_EQ(r.status, 0) << r.err;
  const fs::path run_dir = fs::directory_iterator(out)->path();
  // --out gets the run's summary too (it was once ignored when training)
  const std::string summary = slurp(run_dir / "summary.json");
  EXPECT_EQ(slurp(dir_ / "summary.json"), summary);
  EXPECT_EQ(nlohmann::json::parse(summary).at("frames").get<int64_t>(), 3840);
  EXPECT_EQ(run_dir.filename().string().rfind("gridworld-dynamite-no-consistency-oracle-sessions-0-", 0), 0u)
      << run_dir;
  const std::string config = slurp(run_dir / "config.toml");
  EXPECT_NE(config.find("consistency = false"), std::string::npos) << config;
  EXPECT_NE(config.find("oracle_sessions = true"), std::string::npos) << config;
  std::ifstream jsonl(run_dir / "metrics.jsonl");
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(jsonl, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 4u);
  for (const char* k :
       {"belief_recon", "belief_kl", "belief_bce", "term_precision", "term_recall", "belief_update_s", "ppo_update_s"})
    EXPECT_TRUE(rows.back().contains(k)) << k;
  EXPECT_TRUE(rows.front()["belief_recon"].is_null()) << "no belief step before the replay holds a batch";
  EXPECT_GT(rows.back()["belief_recon"].get<double>(), 0.0);
  EXPECT_TRUE(rows.back().contains("eval_goal_accuracy"));
  const std::string csv = slurp(run_dir / "metrics.csv");
  EXPECT_NE(csv.find(",belief_recon,"), std::string::npos) << csv.substr(0, 300);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5);
  // every row has the header's columns, the evaluation's goal accuracy among them (empty between evaluations): the
  // first evaluation (iteration 2) once added a column the header written at iteration 1 did not have
  std::istringstream lines(csv);
  std::vector<std::string> csv_rows;
  for (std::string line; std::getline(lines, line);) csv_rows.push_back(line);
  ASSERT_EQ(csv_rows.size(), 5u);
  EXPECT_EQ(csv_rows[0].substr(csv_rows[0].rfind(',') + 1), "eval_goal_accuracy") << csv_rows[0];
  for (const std::string& row : csv_rows)
    EXPECT_EQ(std::count(row.begin(), row.end(), ','), std::count(csv_rows[0].begin(), csv_rows[0].end(), ',')) << row;
  EXPECT_EQ(csv_rows[1].back(), ',') << "no evaluation at iteration 1: " << csv_rows[1];
  EXPECT_NE(csv_rows[2].back(), ',') << "the evaluation at iteration 2: " << csv_rows[2];
}

TEST_F(Cli, OutInMissingFolder) {  // refused before training starts, not after
  const Result r = run("--env gridworld --algo ppo --out " + (dir_ / "no_such_folder" / "s.json").string());
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.out, "");
  for (const char* f : {"--out", "no_such_folder", "does not exist"})
    EXPECT_NE(r.err.find(f), std::string::npos) << "'" << f << "' not in: " << r.err;
}

TEST_F(Cli, BeliefRolloutMustHoldWholeEpisodes) {
  expect_bad_input("--env gridworld --algo varibad --set train.rollout_steps=25",
                   {"train.rollout_steps", "a divisor or a multiple of env.horizon = 60"});
}

TEST_F(Cli, RolloutTooLargeForInt32Indices) {  // refused before anything is allocated
  expect_bad_input("--env gridworld --algo ppo --envs 67108864 --set train.rollout_steps=60",
                   {"train.rollout_steps * run.envs", "4026531840", "at most 2147483647", "int32"});
}

TEST_F(Cli, BeliefBatchTooLargeForInt32Rows) {
  expect_bad_input(
      "--env gridworld --algo dynamite --set env.horizon=60000 --set train.rollout_steps=60000 --set "
      "belief.batch_episodes=100000 --set belief.replay_episodes=100000",
      {"(env.horizon + 1) * belief.batch_episodes", "6000100000", "at most 2147483647"});
}

TEST_F(Cli, FusedKernelsKeyIsABoolean) {
  expect_bad_input("--env gridworld --set run.fused_kernels=maybe", {"run.fused_kernels", "maybe"});
}

TEST_F(Cli, ListValuesOfAChoiceKey) {  // what scripts/gpu-check discovers envs and learners with
  const Result r = run("--list-values run.algo");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "none\nppo\noracle\nrl2\ndynamite\nvaribad\ncontrabar\n");
  expect_bad_input("--list-values run.envs", {"--list-values", "run.envs", "not a choice key", "env.name"});
}

// Every target that cannot work is refused before any work, exit 2, one line naming the flag or key: a directory,
// a device, a FIFO and a symlink as --out (and the thing there is left as it was), a directory as --config, a
// run.out_dir that cannot be created.
TEST_F(Cli, OutputTargetsThatCannotWork) {
  fs::create_directories(dir_ / "adir");
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0644), 0);
  write("target", "keep me");
  fs::create_symlink(dir_ / "target", dir_ / "link");
  const std::pair<std::string, std::string> cases[] = {{(dir_ / "adir").string(), "is a directory"},
                                                       {"/dev/null", "is a character device"},
                                                       {(dir_ / "fifo").string(), "is a FIFO"},
                                                       {(dir_ / "link").string(), "is a symbolic link"},
                                                       {(dir_ / "no" / "x.json").string(), "does not exist"}};
  for (const auto& [out, why] : cases)
    for (const char* what :
         {"--env gridworld --policy random --envs 4 --episodes 1", "--env gridworld --algo ppo --frames 1000"}) {
      const Result r = run(std::string(what) + " --set run.out_dir=" + (dir_ / "runs").string() + " --out " + out);
      EXPECT_EQ(r.status, 2) << out << ": " << r.err;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      EXPECT_NE(r.err.find("--out '" + out + "'"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
      EXPECT_EQ(r.out, "");
      EXPECT_FALSE(fs::exists(dir_ / "runs")) << "no work before the refusal";
    }
  EXPECT_TRUE(fs::is_directory(dir_ / "adir"));
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(dir_ / "fifo")));
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(dir_ / "link")));
  EXPECT_EQ(slurp(dir_ / "target"), "keep me");
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << "left behind: " << e.path();

  const Result config = run("--env gridworld --config " + (dir_ / "adir").string());
  EXPECT_EQ(config.status, 2);
  EXPECT_NE(config.err.find("--config '" + (dir_ / "adir").string() + "' is a directory"), std::string::npos)
      << config.err;
  const Result out_dir = run("--env gridworld --algo ppo --frames 1000 --set run.out_dir=" +
                             (dir_ / "target" / "sub").string());  // under a regular file
  EXPECT_EQ(out_dir.status, 2);
  EXPECT_NE(out_dir.err.find("run.out_dir '" + (dir_ / "target" / "sub").string() + "': cannot create it"),
            std::string::npos)
      << out_dir.err;
}

// A flag that does not apply to what runs is an error, not ignored.
TEST_F(Cli, FlagsThatDoNotApply) {
  expect_bad_input("--env gridworld --algo ppo --no-consistency", {"--no-consistency", "dynamite", "ppo"});
  expect_bad_input("--env gridworld --algo rl2 --policy oracle", {"--policy", "rl2"});
  expect_bad_input("--env gridworld --algo ppo --episodes 3", {"--episodes", "ppo", "--frames"});
  expect_bad_input("--env gridworld --policy random --frames 1000", {"--frames", "none"});
}

// A disk that fills during the run (here a file-size limit: the same ENOSPC-like failure, EFBIG): exit 1, the file
// and the OS reason named, the metrics files holding whole lines only, no summary and no --out.
TEST_F(Cli, DiskFullDuringTheRunStopsIt) {
  const fs::path runs = dir_ / "runs", out = dir_ / "out.json";
  const Result r =
      run_cli("--env gridworld --algo ppo --frames 200000 --device cpu --set run.out_dir=" + runs.string() + " --out " +
                  out.string(),
              dir_, "ulimit -f 8; ");  // 8 blocks of 512 bytes
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("cannot write '"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
  const fs::path run_dir = fs::directory_iterator(runs)->path();
  for (const char* f : {"metrics.jsonl", "metrics.csv"}) {
    const std::string text = slurp(run_dir / f);
    ASSERT_FALSE(text.empty()) << f;
    EXPECT_EQ(text.back(), '\n') << f << " ends in a partial line";
  }
  EXPECT_FALSE(fs::exists(run_dir / "summary.json"));
  EXPECT_FALSE(fs::exists(out));
}

// A NaN in a belief loss term stops the run at that iteration, naming the term.
TEST_F(Cli, NanInABeliefLossStopsTheRun) {
  const fs::path runs = dir_ / "runs";
  const Result r =
      run_cli("--env gridworld --algo dynamite --frames 20000 --device cpu --set run.out_dir=" + runs.string(), dir_,
              "DYN_INJECT_NAN=belief_kl@4 ");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("belief_kl is not finite at iteration 4"), std::string::npos) << r.err;
  const std::string jsonl = slurp(fs::directory_iterator(runs)->path() / "metrics.jsonl");
  EXPECT_EQ(std::count(jsonl.begin(), jsonl.end(), '\n'), 4) << "rows up to the bad iteration";
}

// The physics envs through the command line, their options from a config file: each env's scripted random policy
// with latent_phase = random (and wind_mode = drift on halfcheetah_wind_vel) rolls out, the options reach the run
// (the resolved config says so, and the return differs from the default options' with the same seed), and one
// short PPO run trains on it.
TEST_F(Cli, PhysicsEnvsWithOptionsFromAConfigFile) {
  for (const std::string env : {"reacher", "halfcheetah_vel", "halfcheetah_dir", "halfcheetah_wind_vel"}) {
    SCOPED_TRACE(env);
    const bool wind = env == "halfcheetah_wind_vel";
    write(env + ".toml", "[env]\nname = \"" + env + "\"\nlatent_phase = \"random\"\n" +
                             (wind ? "wind_mode = \"drift\"\n" : "") +
                             "[run]\nenvs = 8\n[train]\neval_envs = 8\neval_episodes = 1\neval_carried_episodes = 2\n");
    const fs::path with = dir_ / (env + "-options.json"), plain = dir_ / (env + "-default.json");
    const Result r =
        run("--config " + (dir_ / (env + ".toml")).string() + " --policy random --episodes 1 --out " + with.string());
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_EQ(run("--env " + env + " --envs 8 --policy random --episodes 1 --out " + plain.string()).status, 0);
    const nlohmann::json j = nlohmann::json::parse(slurp(with)), d = nlohmann::json::parse(slurp(plain));
    const std::string config = j["config"];
    EXPECT_NE(config.find("latent_phase = 'random'"), std::string::npos) << config;
    if (wind) {
      EXPECT_NE(config.find("wind_mode = 'drift'"), std::string::npos) << config;
    }
    EXPECT_EQ(j["episodes"], 8);
    EXPECT_TRUE(std::isfinite(j["mean_return"].get<double>()));
    // the phase offsets the sinusoidal schedules; halfcheetah_dir's direction is a Markov chain, which it leaves alone
    if (env != "halfcheetah_dir") {
      EXPECT_NE(j["mean_return"].get<double>(), d["mean_return"].get<double>()) << "the options change the episodes";
    }
  }
  const fs::path runs = dir_ / "runs";
  const Result t = run("--config " + (dir_ / "halfcheetah_wind_vel.toml").string() +
                       " --algo ppo --frames 320 --device cpu --set run.out_dir=" + runs.string());
  ASSERT_EQ(t.status, 0) << t.err;
  const nlohmann::json summary = nlohmann::json::parse(slurp(fs::directory_iterator(runs)->path() / "summary.json"));
  EXPECT_EQ(summary["env"], "halfcheetah_wind_vel");
  EXPECT_EQ(summary["frames"], 320) << "8 envs x 20 rollout steps x 2 iterations";
  EXPECT_TRUE(std::isfinite(summary["eval_return"].get<double>()));
}
