// Sweeps on Slurm: a one-node Slurm (munge, slurmctld, slurmd on this machine, state in a temp folder) runs
// `scripts/reproduce ... --launcher slurm`: a 4-task job array of tiny gridworld runs and the job that tabulates them
// once the array has ended. One task is requeued while its run trains (as a preemption would): its run stops with a
// checkpoint and the requeued task resumes it in place. Skipped, with the reason, where Slurm cannot run (not root,
// slurm-wlm or munge missing: scripts/setup installs them).
#include <gtest/gtest.h>
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

int sh(const std::string& line) {
  const int raw = std::system(line.c_str());
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
}

std::string short_hostname() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  std::string h = name;
  return h.substr(0, h.find('.'));
}

// Polls `done` every 0.5 s for up to `seconds`.
template <class F>
bool wait_for(F done, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return done();
}

class Slurm : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "munge", "unmunge"})
      if (sh(std::string("command -v ") + tool + " >/dev/null 2>&1") != 0 &&
          !fs::exists(std::string("/usr/sbin/") + tool))
        GTEST_SKIP() << "Slurm cannot run here: " << tool << " is missing (scripts/setup installs slurm-wlm, munge)";
    if (geteuid() != 0) GTEST_SKIP() << "Slurm cannot run here: slurmd must run as root to start jobs";
    if (sh("munge -n 2>/dev/null | unmunge >/dev/null 2>&1") != 0) {  // start munged when it is not running
      sh("mkdir -p /run/munge && chown munge:munge /run/munge && su -s /bin/sh munge -c /usr/sbin/munged "
         ">/dev/null 2>&1");
      if (!wait_for([] { return sh("munge -n 2>/dev/null | unmunge >/dev/null 2>&1") == 0; }, 10))
        GTEST_SKIP() << "Slurm cannot run here: munged does not start (needs /etc/munge/munge.key)";
    }
    dir_ = fs::temp_directory_path() / ("dyn_slurm_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    for (const char* d : {"state", "spool", "log"}) fs::create_directories(dir_ / d);
    const std::string host = short_hostname(), d = dir_.string();
    std::ofstream(dir_ / "slurm.conf")
        << "ClusterName=dyntest\nSlurmctldHost=" << host
        << "(127.0.0.1)\nSlurmUser=root\nAuthType=auth/munge\nProctrackType=proctrack/linuxproc\n"
           "TaskPlugin=task/none\nSelectType=select/cons_tres\n"
           "SelectTypeParameters=CR_CPU\nStateSaveLocation="
        << d << "/state\nSlurmdSpoolDir=" << d << "/spool\nSlurmctldPidFile=" << d
        << "/slurmctld.pid\nSlurmdPidFile=" << d << "/slurmd.pid\nSlurmctldLogFile=" << d
        << "/log/slurmctld.log\nSlurmdLogFile=" << d
        << "/log/slurmd.log\nSlurmctldPort=16917\nSlurmdPort=16918\nReturnToService=2\n"
           "MpiDefault=none\nJobCompType=jobcomp/none\n"
           "JobAcctGatherType=jobacct_gather/none\n"
           "AccountingStorageType=accounting_storage/none\nNodeName="
        << host << " NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n"
        << "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n";
    env_ = "SLURM_CONF=" + (dir_ / "slurm.conf").string() + " ";
    ASSERT_EQ(sh(env_ + "slurmctld -c -i"), 0) << slurp(dir_ / "log/slurmctld.log");
    ASSERT_EQ(sh(env_ + "slurmd -c"), 0) << slurp(dir_ / "log/slurmd.log");
    started_ = true;
    ASSERT_TRUE(wait_for([&] { return sh(env_ + "sinfo -h -o %t 2>/dev/null | grep -q idle") == 0; }, 30))
        << slurp(dir_ / "log/slurmctld.log") << slurp(dir_ / "log/slurmd.log");
  }
  void TearDown() override {
    if (started_) {
      sh(env_ + "scancel --user=root >/dev/null 2>&1");
      for (const char* pid : {"slurmd.pid", "slurmctld.pid"})
        if (fs::exists(dir_ / pid)) sh("kill $(cat " + (dir_ / pid).string() + ") 2>/dev/null");
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    if (!HasFailure() && !dir_.empty()) fs::remove_all(dir_);
  }
  bool queue_empty() const { return sh(env_ + "squeue -h 2>/dev/null | grep -q .") != 0; }

  fs::path dir_;
  std::string env_;
  bool started_ = false;
};

}  // namespace

TEST_F(Slurm, JobArrayRunsRequeuesAndTabulates) {
  // 2 learners x 2 seeds of 0.005 x 2e7 = 100,800 frames each (3-10 s per run)
  const fs::path out = dir_ / "table1";
  const std::string submit = "cd " DYN_SOURCE_DIR " && " + env_ +
                             "scripts/reproduce table1 --envs gridworld --algos ppo rl2 --seeds 2 --frames-scale 0.005 "
                             "--device cpu --binary " DYN_BIN " --launcher slurm --out " +
                             out.string() + " >" + (dir_ / "submit.log").string() + " 2>&1";
  ASSERT_EQ(sh(submit), 0) << slurp(dir_ / "submit.log");
  const std::string submitted = slurp(dir_ / "submit.log");
  EXPECT_NE(submitted.find("4 tasks"), std::string::npos) << submitted;
  EXPECT_NE(submitted.find("tables once the array has ended"), std::string::npos) << submitted;

  // requeue the last task (rl2, seed 1) once its run has logged an iteration: Slurm's SIGTERM stops the run with a
  // checkpoint; Slurm starts the task again after its requeue delay (~2 min) and the task resumes the run
  const auto rl2_seed1_started = [&] {
    if (!fs::exists(out / "runs")) return false;
    for (const auto& d : fs::directory_iterator(out / "runs"))
      if (d.path().filename().string().rfind("gridworld-rl2-1-", 0) == 0 && fs::exists(d.path() / "metrics.jsonl") &&
          fs::file_size(d.path() / "metrics.jsonl") > 0)
        return true;
    return false;
  };
  ASSERT_TRUE(wait_for(rl2_seed1_started, 120)) << slurp(dir_ / "log/slurmctld.log");
  const std::string array_id = [&] {
    const std::string s = submitted.substr(submitted.find("job array ") + 10);
    return s.substr(0, s.find(':'));
  }();
  ASSERT_EQ(sh(env_ + "scontrol requeue " + array_id + "_3"), 0);
  ASSERT_TRUE(wait_for([&] { return queue_empty(); }, 400)) << "the array and the table job end";

  const std::string task = slurp(out / "slurm" / ("task-" + array_id + "_3.out"));
  EXPECT_NE(task.find("stopped with a checkpoint"), std::string::npos) << task;
  EXPECT_NE(task.find("resuming"), std::string::npos) << task;
  int runs = 0;
  for (const auto& d : fs::directory_iterator(out / "runs")) {
    ++runs;
    const std::string summary = slurp(d.path() / "summary.json");
    EXPECT_NE(summary.find("\"frames\": 100800"), std::string::npos) << d.path() << "\n" << summary;
  }
  EXPECT_EQ(runs, 4) << "the requeued run resumed in place";
  const std::string table = slurp(out / "table.md");
  EXPECT_NE(table.find("| ppo | "), std::string::npos) << table;
  EXPECT_NE(table.find("| rl2 | "), std::string::npos) << table;
  EXPECT_EQ(table.find("[1]"), std::string::npos) << "both seeds of each learner in the table\n" << table;
}
