// The Python tools around the binary, run as a user runs them: scripts/inspect draws a committed trace
// (tests/data/trace_gridworld_dynamite.jsonl: dynamite_gpu --eval --trace of a 200k-frame gridworld DynaMITE-RL run,
// envs 0 and 1, two episodes each) and refuses what it cannot draw; scripts/reproduce at a tiny scale writes every
// output, skips finished runs on a second call, and resumes a campaign stopped by SIGTERM, from a snapshot
// (scripts/snapshot) as a fresh clone holds it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "tests/slurp.h"

namespace fs = std::filesystem;

namespace {

struct ScriptRun {
  int status;
  std::string output;
};

ScriptRun run_script(const std::string& line, const fs::path& dir) {
  const fs::path log = dir / "script.log";
  const int raw = std::system(("cd " DYN_SOURCE_DIR " && " + line + " >" + log.string() + " 2>&1").c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(log)};
}

class Scripts : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dyn_scripts_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

}  // namespace

TEST_F(Scripts, InspectDrawsATrace) {
  const std::string trace = std::string(DYN_SOURCE_DIR) + "/tests/data/trace_gridworld_dynamite.jsonl";
  const fs::path png = dir_ / "belief.png";
  const ScriptRun r = run_script("scripts/inspect " + trace + " --out " + png.string() + " --env-index 1", dir_);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("120 steps of env 1"), std::string::npos) << r.output;
  const std::string bytes = slurp(png);
  ASSERT_GT(bytes.size(), 20000u) << "four panels of lines";
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_FALSE(fs::exists(dir_ / "belief.png.tmp.png")) << "written whole, then renamed";

  const ScriptRun missing = run_script("scripts/inspect " + trace + " --out " + png.string() + " --env-index 7", dir_);
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.output.find("no records of env 7"), std::string::npos) << missing.output;
  const ScriptRun not_png = run_script("scripts/inspect " + trace + " --out " + (dir_ / "b.jpg").string(), dir_);
  EXPECT_NE(not_png.status, 0);
  EXPECT_NE(not_png.output.find(".png"), std::string::npos) << not_png.output;
}

namespace {

// scripts/reproduce with the test's binary on the gridworld, a tiny budget (2e7 x 0.0002 = 4,000 frames: 5
// iterations)
std::string reproduce(const std::string& target, const fs::path& out, const std::string& more = "",
                      const std::string& scale = "0.0002") {
  return "scripts/reproduce " + target + " --envs gridworld --frames-scale " + scale +
         " --device cpu --binary " DYN_BIN " --out " + out.string() + " " + more;
}

int count_lines(const std::string& text) {
  int n = 0;
  for (const char c : text) n += c == '\n';
  return n;
}

}  // namespace

TEST_F(Scripts, ReproduceWritesEveryOutputAndSkipsFinishedRuns) {
  const fs::path out = dir_ / "table1";
  const ScriptRun first = run_script(reproduce("table1", out, "--algos ppo rl2 --seeds 2 --jobs 2"), dir_);
  ASSERT_EQ(first.status, 0) << first.output;
  for (const char* f : {"table.md", "table.csv", "curves.png", "commands.txt", "campaign.json"})
    EXPECT_TRUE(fs::is_regular_file(out / f)) << f << "\n" << first.output;
  EXPECT_EQ(count_lines(slurp(out / "commands.txt")), 4) << "2 learners x 2 seeds";
  const std::string table = slurp(out / "table.md");
  EXPECT_NE(table.find("| ppo | "), std::string::npos) << table;
  EXPECT_NE(table.find("| rl2 | "), std::string::npos) << table;
  EXPECT_NE(table.find("[2]"), std::string::npos) << "two seeds per cell\n" << table;
  EXPECT_NE(table.find("scripted oracle"), std::string::npos) << "the ceiling beside the learners\n" << table;
  EXPECT_EQ(count_lines(slurp(out / "table.csv")), 3) << "a header and one row per learner";
  const std::string campaign = slurp(out / "campaign.json");
  EXPECT_NE(campaign.find("\"runs_finished\": 4"), std::string::npos) << campaign;
  EXPECT_NE(campaign.find("cpu"), std::string::npos) << "the device\n" << campaign;

  // a second call runs nothing; fig6 reads the same runs' 5-episode evaluation
  const ScriptRun again = run_script(reproduce("table1", out, "--algos ppo rl2 --seeds 2"), dir_);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("4 of 4 runs already finished, 0 to run"), std::string::npos) << again.output;
  EXPECT_EQ(count_lines(slurp(out / "commands.txt")), 4);
  const std::string campaign_after = slurp(out / "campaign.json");
  EXPECT_NE(campaign_after.find("\"--jobs\""), std::string::npos)
      << "a later call keeps the first call's command line\n"
      << campaign_after;
  EXPECT_NE(campaign_after.find("\"runs_finished\": 4"), std::string::npos) << campaign_after;
  const ScriptRun fig6 = run_script(reproduce("fig6", out, "--algos ppo rl2 --seeds 2"), dir_);
  ASSERT_EQ(fig6.status, 0) << fig6.output;
  EXPECT_NE(slurp(out / "table.md").find("episode 5"), std::string::npos) << slurp(out / "table.md");

  const ScriptRun bad = run_script(reproduce("table1", out, "--algos ppo --frames-scale 0"), dir_);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("--frames-scale 0"), std::string::npos) << bad.output;
}

TEST_F(Scripts, ReproduceResumesAStoppedCampaign) {
  // one RL² run of 0.005 x 2e7 = 100k frames; SIGTERM to scripts/reproduce once the run has logged an iteration:
  // the run writes a checkpoint and stops, and the same command resumes it to the end
  const fs::path out = dir_ / "stopped";
  const std::string cmd = "cd " DYN_SOURCE_DIR
                          " && exec scripts/reproduce table1 --envs gridworld --algos rl2 "
                          "--seeds 1 --jobs 1 --frames-scale 0.005 --device cpu --binary " DYN_BIN " --out " +
                          out.string() + " >" + (dir_ / "first.log").string() + " 2>&1";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // wait for the run's first metrics line
  bool started = false;
  for (int i = 0; i < 600 && !started; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (fs::exists(out / "runs"))
      for (const auto& d : fs::directory_iterator(out / "runs"))
        started = started || (fs::exists(d.path() / "metrics.jsonl") && fs::file_size(d.path() / "metrics.jsonl") > 0);
  }
  ASSERT_TRUE(started) << slurp(dir_ / "first.log");
  kill(pid, SIGTERM);
  int raw = 0;
  waitpid(pid, &raw, 0);
  ASSERT_TRUE(WIFEXITED(raw)) << slurp(dir_ / "first.log");
  EXPECT_EQ(WEXITSTATUS(raw), 128 + SIGTERM) << slurp(dir_ / "first.log");
  const std::string first = slurp(dir_ / "first.log");
  EXPECT_NE(first.find("stopped with a checkpoint"), std::string::npos) << first;
  EXPECT_FALSE(fs::exists(out / "table.md")) << "no table from an unfinished campaign";

  // scripts/snapshot packs the stopped run; the run directory is then left as a fresh clone holds it (config.toml and
  // the snapshot: the checkpoint is git-ignored, the metrics are in the snapshot), and the campaign restores it
  const ScriptRun snapshot = run_script("scripts/snapshot " + out.string(), dir_);
  ASSERT_EQ(snapshot.status, 0) << snapshot.output;
  EXPECT_NE(snapshot.output.find(": iteration "), std::string::npos) << snapshot.output;
  for (const auto& d : fs::directory_iterator(out / "runs")) {
    ASSERT_TRUE(fs::exists(d.path() / "snapshot.tar.gz")) << snapshot.output;
    for (const auto& f : fs::directory_iterator(d.path()))
      if (f.path().filename() != "config.toml" && f.path().filename() != "snapshot.tar.gz") fs::remove(f.path());
  }

  // resumed with the default --device auto: the run started with --device cpu resumes on its own device
  const ScriptRun resumed = run_script(
      "scripts/reproduce table1 --envs gridworld --algos rl2 --seeds 1 --jobs 1 "
      "--frames-scale 0.005 --binary " DYN_BIN " --out " +
          out.string(),
      dir_);
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("restored"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming"), std::string::npos) << resumed.output;
  EXPECT_NE(slurp(out / "table.md").find("| rl2 | "), std::string::npos);
  int runs = 0;
  for (const auto& d : fs::directory_iterator(out / "runs")) {
    ++runs;
    const std::string summary = slurp(d.path() / "summary.json");
    EXPECT_NE(summary.find("\"frames\": 100800"), std::string::npos) << "the whole budget\n" << summary;
    EXPECT_FALSE(fs::exists(d.path() / "snapshot.tar.gz")) << "a finished run's snapshot is deleted";
    EXPECT_GT(slurp(d.path() / "metrics.jsonl").size(), 0u) << "the metrics before the stop came back";
  }
  EXPECT_EQ(runs, 1) << "resumed in place, not started again";
}

TEST_F(Scripts, SweepRunsTheGridAndTabulatesEachPoint) {
  // 2 x 2 grid points x 1 seed, 3 iterations each: one folder per point, each run's config at its point's values
  const fs::path out = dir_ / "sweep";
  const std::string cmd =
      "scripts/sweep --env gridworld --algo ppo --grid train.lr=3e-4,1e-3 --grid train.clip=0.1,0.2 "
      "--seeds 1 --frames 2000 --device cpu --binary " DYN_BIN " --out " +
      out.string();
  const ScriptRun r = run_script(cmd, dir_);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string table = slurp(out / "table.md");
  for (const char* point : {"train.lr=3e-4,train.clip=0.1", "train.lr=3e-4,train.clip=0.2",
                            "train.lr=1e-3,train.clip=0.1", "train.lr=1e-3,train.clip=0.2"}) {
    EXPECT_NE(table.find(std::string("| ") + point + " | 1 |"), std::string::npos) << point << "\n" << table;
    const fs::path runs = out / point / "runs";
    ASSERT_TRUE(fs::exists(runs)) << point;
    const std::string config = slurp(fs::directory_iterator(runs)->path() / "config.toml");
    const std::string lr = std::string(point).substr(9, 4) == "3e-4" ? "lr = 0.00029999999999999997" : "lr = 0.001";
    EXPECT_NE(config.find("[train]"), std::string::npos);
    EXPECT_NE(config.substr(config.find("[train]")).find(lr), std::string::npos) << point << "\n" << config;
  }
  const ScriptRun again = run_script(cmd, dir_);
  EXPECT_NE(again.output.find("4 of 4 runs already finished"), std::string::npos) << again.output;
  const ScriptRun bad = run_script("scripts/sweep --env gridworld --algo ppo --grid train.lr --out " +
                                       (dir_ / "bad").string() + " --binary " DYN_BIN,
                                   dir_);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("KEY=V1,V2"), std::string::npos) << bad.output;
}

TEST_F(Scripts, ReproduceFig8BoxesTwentyFiveRolloutsPerPolicy) {
  // K = 1 and 4 on the gridworld (fig8's K list, 1..400, is for H = 400), one seed each of ppo and dynamite: each
  // trained policy's final evaluation is 25 single-episode rollouts (train.eval_envs = 25), drawn as box plots
  const fs::path out = dir_ / "fig8";
  const ScriptRun r = run_script(reproduce("fig8", out, "--sessions 1 4 --algos ppo dynamite --seeds 1"), dir_);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string table = slurp(out / "table.md");
  EXPECT_NE(table.find("| 1 | "), std::string::npos) << table;
  EXPECT_NE(table.find("| 4 | "), std::string::npos) << table;
  EXPECT_NE(table.find("| 25 | "), std::string::npos) << "25 rollouts per policy\n" << table;
  EXPECT_TRUE(fs::is_regular_file(out / "curves.png"));
  int runs = 0;
  for (const auto& d : fs::directory_iterator(out / "runs")) {
    ++runs;
    const std::string config = slurp(d.path() / "config.toml");
    EXPECT_TRUE(config.find("sessions = 1\n") != std::string::npos ||
                config.find("sessions = 4\n") != std::string::npos)
        << config;
  }
  EXPECT_EQ(runs, 4);
  const ScriptRun stray = run_script(reproduce("table1", out, "--sessions 2 --algos ppo --seeds 1"), dir_);
  EXPECT_NE(stray.status, 0);
  EXPECT_NE(stray.output.find("--sessions applies to fig8 only"), std::string::npos) << stray.output;
}

// Which finished runs a campaign accepts (scripts/campaign_lib.py finished()): a --set key of a section the job's
// learner does not read (contrabar.* for rl2) does not tell runs apart, one it reads does; a target that needs a
// summary key (Fig. 6: eval_carried) does not accept a run without it.
TEST_F(Scripts, FinishedRunsMatchOnTheKeysTheirLearnerReadsAndWhatTheTargetNeeds) {
  const fs::path runs = dir_ / "runs";
  auto make_run = [&](const std::string& name, const std::string& algo, const std::string& extra) {
    fs::create_directories(runs / name);
    std::ofstream(runs / name / "config.toml") << "[contrabar]\nhidden = 256\n\n[train]\nlr = 0.0003\n";
    std::ofstream(runs / name / "summary.json")
        << "{\"algo\": \"" << algo << "\", \"seed\": 0, \"frames\": 100" << extra << "}\n";
  };
  make_run("gridworld-rl2-0-20260101-000000", "rl2", "");
  make_run("gridworld-contrabar-0-20260101-000000", "contrabar", ", \"eval_carried\": []");
  const std::string py =
      "import sys; sys.path.insert(0, 'scripts'); from campaign_lib import Job, finished; R = '" + runs.string() +
      "'; j = lambda a, sets, needs=(): bool(finished(Job('gridworld', a, 0, R, 100, sets, needs=needs))); "
      "print(j('rl2', ['contrabar.hidden=64']), j('contrabar', ['contrabar.hidden=64']), "
      "j('contrabar', ['contrabar.hidden=256']), j('rl2', ['train.lr=7e-4']), j('rl2', [], ['eval_carried']), "
      "j('contrabar', [], ['eval_carried']))";
  const ScriptRun r = run_script("python3 -c \"" + py + "\"", dir_);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "True False True False False True\n");
}
