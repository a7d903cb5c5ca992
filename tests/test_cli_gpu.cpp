// The command line on a device (label gpu): training runs, a resume from a checkpoint and a scripted physics rollout
// with --device cuda, each ending with exit status 0 and finite figures in its summary.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <string>

#include "tests/cli_run.h"
#include "tests/gpu_guard.h"

namespace fs = std::filesystem;

namespace {

fs::path scratch_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("dyn_cli_gpu_" + std::to_string(::getpid()) + "_" + name);
  fs::create_directories(dir);
  return dir;
}

// --algo trains a few iterations on CUDA and writes a summary with a finite evaluation return.
void expect_training_on_cuda(const std::string& algo, int64_t frames) {
  const fs::path dir = scratch_dir(algo);
  const fs::path json = dir / "summary.json";
  const CliResult r =
      run_cli("--env gridworld --algo " + algo + " --frames " + std::to_string(frames) +
                  " --device cuda --set run.out_dir=" + (dir / "runs").string() + " --out " + json.string(),
              dir);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("cuda"), std::string::npos) << "the run names its device: " << r.out;
  const nlohmann::json j = nlohmann::json::parse(slurp(json), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "summary: " << slurp(json);
  ASSERT_TRUE(j.contains("eval_return") && j["eval_return"].is_number()) << j.dump();
  EXPECT_TRUE(std::isfinite(j["eval_return"].get<double>()));
  fs::remove_all(dir);
}

}  // namespace

TEST(CliGpu, PpoTrainsOnCuda) {
  DYN_REQUIRE_CUDA();
  expect_training_on_cuda("ppo", 4 * 60 * 16);
}

TEST(CliGpu, DynamiteTrainsOnCuda) {
  DYN_REQUIRE_CUDA();
  expect_training_on_cuda("dynamite", 4 * 60 * 16);  // belief steps from the second iteration
}

TEST(CliGpu, PhysicsRolloutOnCuda) {
  DYN_REQUIRE_CUDA();
  const fs::path dir = scratch_dir("physics");
  const CliResult r = run_cli(
      "--env halfcheetah_wind_vel --envs 2048 --episodes 1 --device cuda --out " + (dir / "o.json").string(), dir);
  EXPECT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(slurp(dir / "o.json"), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["episodes"], 2048);
  EXPECT_TRUE(std::isfinite(j["mean_return"].get<double>()));
  fs::remove_all(dir);
}

// A run on CUDA stopped by SIGTERM (a checkpoint read back from device memory) and resumed on CUDA (written back into
// it, the captured graphs reading the restored buffers) ends where an uninterrupted CUDA run does: the same frames and
// an evaluation return within float noise (the device's reductions need not sum in one order from run to run).
TEST(CliGpu, ResumeOnCuda) {
  DYN_REQUIRE_CUDA();
  for (const std::string algo : {"ppo", "rl2", "dynamite"}) {
    const fs::path dir = scratch_dir("resume_" + algo);
    const std::string common = "--env gridworld --algo " + algo +
                               " --frames 11520 --device cuda --set train.eval_interval=3 "
                               "--set train.checkpoint_interval=4";
    const CliResult full = run_cli(common + " --set run.out_dir=" + (dir / "full").string(), dir);
    ASSERT_EQ(full.status, 0) << full.err;
    const CliResult stopped =
        run_cli(common + " --set run.out_dir=" + (dir / "part").string(), dir, "DYN_INJECT_SIGTERM=6 ");
    ASSERT_EQ(stopped.status, 143) << stopped.err;
    const fs::path part = fs::directory_iterator(dir / "part")->path();
    const CliResult resumed = run_cli("--resume " + part.string() + " --device cuda", dir);
    ASSERT_EQ(resumed.status, 0) << resumed.err;
    const nlohmann::json a =
        nlohmann::json::parse(slurp(fs::directory_iterator(dir / "full")->path() / "summary.json"));
    const nlohmann::json b = nlohmann::json::parse(slurp(part / "summary.json"));
    EXPECT_EQ(a["frames"], b["frames"]) << algo;
    EXPECT_NEAR(a["eval_return"].get<double>(), b["eval_return"].get<double>(), 0.5) << algo;
    fs::remove_all(dir);
  }
}

// Four seeds in one process on CUDA (ppo, rl2, dynamite, contrabar: one learner over [S, P] — run.seed_batch = auto
// —, the GEMM path; dynamite with run.seed_batch = threads: a host thread and a stream each, kernels overlapping)
// against each seed alone: every run's first iteration within float noise (the device's reduction order, and the GEMM
// path against the fused kernels and recurrence, may differ), and the runs different from each other.
TEST(CliGpu, SeedBatchOnCudaMatchesSeedsAlone) {
  DYN_REQUIRE_CUDA();
  for (const std::string algo : {"ppo", "rl2", "dynamite", "contrabar", "dynamite-threads"}) {
    const bool threads = algo == "dynamite-threads";
    const fs::path dir = scratch_dir("seeds_" + algo);
    const std::string common =
        "--env gridworld --algo " + algo.substr(0, algo.find('-')) + " --frames 2880 --device cuda";
    const CliResult batch = run_cli(common + " --seeds 0-3 --set run.out_dir=" + (dir / "batch").string() +
                                        (threads ? " --set run.seed_batch=threads" : ""),
                                    dir);
    ASSERT_EQ(batch.status, 0) << batch.err;
    EXPECT_NE(batch.err.find(threads ? "a stream per run" : "one seed batch"), std::string::npos) << batch.err;
    for (int s = 0; s < 4; ++s)
      ASSERT_EQ(run_cli(common + " --seed " + std::to_string(s) + " --set run.out_dir=" + (dir / "alone").string(), dir)
                    .status,
                0);
    auto first_row = [](const fs::path& runs, int seed) {
      for (const auto& e : fs::directory_iterator(runs))
        if (e.path().filename().string().find("-" + std::to_string(seed) + "-2") != std::string::npos) {
          std::string text = slurp(e.path() / "metrics.jsonl");
          return nlohmann::json::parse(text.substr(0, text.find('\n')));
        }
      return nlohmann::json();
    };
    for (int s = 0; s < 4; ++s) {
      const nlohmann::json a = first_row(dir / "batch", s), b = first_row(dir / "alone", s);
      ASSERT_FALSE(a.is_null() || b.is_null()) << algo << " seed " << s;
      for (const char* k : {"policy_loss", "value_loss", "entropy", "grad_norm"})
        EXPECT_NEAR(a[k].get<double>(), b[k].get<double>(), 1e-4 * (1 + std::abs(b[k].get<double>())))
            << algo << " seed " << s << " " << k;
    }
    EXPECT_NE(first_row(dir / "batch", 0)["policy_loss"], first_row(dir / "batch", 1)["policy_loss"]) << algo;
    fs::remove_all(dir);
  }
}
