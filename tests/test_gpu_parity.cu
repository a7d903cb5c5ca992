// CPU vs CUDA parity (label gpu): Philox draws, whole gridworld rollouts (16 to a million envs) and the minibatch
// shuffles must be bit-identical for the same seed; RunningNorm's statistics agree to double rounding. Skipped
// without a device; fails under DYN_REQUIRE_GPU=1 if none is found.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "algo/running_norm.h"
#include "algo/scripted_rollout.h"
#include "kernels/buffer.h"
#include "kernels/parallel_for.cuh"
#include "kernels/philox.h"
#include "kernels/shuffle.h"
#include "tests/bounds.h"
#include "tests/env_helpers.h"
#include "tests/gpu_guard.h"
#include "tests/random_vectors.h"
#include "tests/rollout_trace.h"

using namespace dyn;

namespace {

// [n, 4]: u32, uniform, poisson(3), poisson(15) drawn for env i on backend b.
std::vector<float> draws(Backend b, int64_t n) {
  Buffer<float> out(b, n * 4);
  float* o = out.data();
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) {
    Philox rng(99, 1, uint32_t(i), 17);
    o[i * 4 + 0] = float(rng.next_u32() >> 8);
    o[i * 4 + 1] = rng.uniform();
    o[i * 4 + 2] = float(rng.poisson(3.0f));
    o[i * 4 + 3] = float(rng.poisson(15.0f));
  });
  synchronize(b);
  return out.to_host();
}

std::vector<float> normals(Backend b, int64_t n) {
  Buffer<float> out(b, n);
  float* o = out.data();
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) { o[i] = Philox(99, 2, uint32_t(i), 0).normal(); });
  synchronize(b);
  return out.to_host();
}

}  // namespace

TEST(GpuParity, PhiloxDrawsBitIdentical) {
  DYN_REQUIRE_CUDA();
  EXPECT_EQ(draws(Backend::cpu, 1 << 16), draws(Backend::cuda, 1 << 16));
}

TEST(GpuParity, NormalDrawsAgreeToFloatRounding) {
  DYN_REQUIRE_CUDA();
  // device logf/sincospif and host libm may differ in the last bit
  const auto c = normals(Backend::cpu, 1 << 16), g = normals(Backend::cuda, 1 << 16);
  for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(c[i], g[i], 1e-5f * (1.0f + std::fabs(c[i]))) << i;
}

TEST(GpuParity, GridworldRolloutsBitIdentical) {
  DYN_REQUIRE_CUDA();
  for (ScriptedPolicy policy : {ScriptedPolicy::random, ScriptedPolicy::oracle})
    for (SessionModel m : {SessionModel::poisson, SessionModel::bernoulli, SessionModel::fixed}) {
      GridParams p;
      p.seed = 2024;
      p.session.model = m;
      p.session.switch_prob = 0.07f;
      const RolloutTrace cpu = record_rollout(Backend::cpu, p, policy, 4096, 1000);
      const RolloutTrace gpu = record_rollout(Backend::cuda, p, policy, 4096, 1000);
      EXPECT_TRUE(cpu == gpu) << "policy " << int(policy) << " model " << int(m);
    }
}

// Per-env episode sums accumulate the same float rewards in the same order on both backends and the host adds
// them up: the mean return is identical; the CI (a sum of squares, which the device may contract into FMAs) to
// rounding.
TEST(GpuParity, ScriptedRolloutSummariesAgree) {
  DYN_REQUIRE_CUDA();
  GridParams p;
  const RolloutSummary c = grid_rollout(Backend::cpu, p, ScriptedPolicy::oracle, 8192, 5);
  const RolloutSummary g = grid_rollout(Backend::cuda, p, ScriptedPolicy::oracle, 8192, 5);
  EXPECT_EQ(c.episodes, g.episodes);
  EXPECT_EQ(c.mean_return, g.mean_return);
  DYN_EXPECT_WITHIN("ci95_abs_diff", std::fabs(c.return_ci95 - g.return_ci95), 1e-12 * c.return_ci95);
  EXPECT_EQ(c.mean_sessions, g.mean_sessions);
}

// A million envs (the size of the 1e9 env-steps/s goal): the batched calls' int64 indexing at that size, and the
// same episodes as the CPU.
TEST(GpuParity, MillionEnvGridworldRolloutMatchesCpu) {
  DYN_REQUIRE_CUDA();
  GridParams p;
  p.seed = 77;
  const int64_t n = int64_t(1) << 20;
  const RolloutSummary c = grid_rollout(Backend::cpu, p, ScriptedPolicy::random, n, 1);
  const RolloutSummary g = grid_rollout(Backend::cuda, p, ScriptedPolicy::random, n, 1);
  EXPECT_EQ(c.episodes, n);
  EXPECT_EQ(g.episodes, n);
  EXPECT_EQ(c.mean_return, g.mean_return);
  EXPECT_EQ(c.mean_sessions, g.mean_sessions);
}

// The minibatch shuffles: CUB's stable radix sort of the Philox keys on the device, std::sort of (key, index) pairs
// on the CPU — the same permutations, at a PPO update's size (60 steps × 4096 envs).
TEST(GpuParity, ShufflesIdentical) {
  DYN_REQUIRE_CUDA();
  const int64_t n = 60 * 4096;
  std::vector<int32_t> perm[2];
  for (Backend b : {Backend::cpu, Backend::cuda}) {
    PermutationSampler s(b, n);
    Buffer<int32_t> out(b, size_t(n) * 3);
    Buffer<uint32_t> counter = Buffer<uint32_t>::copy_of(b, std::vector<uint32_t>{4});
    for (uint32_t d = 0; d < 3; ++d) s.draw(21, StepRef(counter.data(), d), out.data() + int64_t(d) * n);
    synchronize(b);
    perm[b == Backend::cuda] = out.to_host();
  }
  EXPECT_EQ(perm[0], perm[1]);
}

// A seed batch's shuffles: CUB's segmented radix sort (every run's every epoch in one call) against the CPU.
TEST(GpuParity, SeedBatchShufflesIdentical) {
  DYN_REQUIRE_CUDA();
  const int64_t n = 60 * 16;  // the gridworld's update
  const int runs = 5, epochs = 4;
  std::vector<int32_t> perm[2];
  for (Backend b : {Backend::cpu, Backend::cuda}) {
    PermutationSampler s(b, n, runs * epochs);
    Buffer<int32_t> out(b, size_t(n) * runs * epochs);
    const auto seeds = Buffer<uint32_t>::copy_of(b, std::vector<uint32_t>{0, 1, 2, 3, 99});
    const auto counters = Buffer<uint32_t>::copy_of(b, std::vector<uint32_t>{4, 4, 0, 12, 8});
    s.draw_runs(RunDraws{seeds.data(), counters.data(), runs, epochs}, out.data());
    synchronize(b);
    perm[b == Backend::cuda] = out.to_host();
  }
  EXPECT_EQ(perm[0], perm[1]);
}

// RunningNorm's statistics from the device's chunked reduction against the CPU's, over batches from one row to
// many chunks (double sums in another order: ~1e-15 relative).
TEST(GpuParity, RunningNormMatchesCpu) {
  DYN_REQUIRE_CUDA();
  for (int dim : {1, 6, 49, 300}) {
    std::vector<double> stats[2];
    for (Backend b : {Backend::cpu, Backend::cuda}) {
      RunningNorm norm(b, dim);
      uint32_t seed = 3;
      for (int64_t rows : {int64_t(1), int64_t(16), int64_t(960), int64_t(245760)}) {
        std::vector<float> x = randn<float>(size_t(rows) * dim, seed++);
        for (size_t i = 0; i < x.size(); ++i) x[i] = 100.0f * float(i % dim % 3) + x[i];
        const Buffer<float> xb = Buffer<float>::copy_of(b, x);
        norm.update(xb.data(), rows);
      }
      stats[b == Backend::cuda] = norm.stats();
    }
    double worst = 0;
    for (size_t i = 0; i < stats[0].size(); ++i)
      worst = std::fmax(worst, std::fabs(stats[1][i] - stats[0][i]) / (1.0 + std::fabs(stats[0][i])));
    DYN_EXPECT_WITHIN("dim" + std::to_string(dim) + "/stats_rel_diff", worst, 1e-12);
  }
}

// A seed batch's normalisers (one launch for every run's moments, merge and count, normalisation and scale) on CUDA
// against the CPU.
TEST(GpuParity, SeedBatchRunNormsMatchCpu) {
  DYN_REQUIRE_CUDA();
  const int runs = 5, dim = 7;
  const int64_t n = 1100;  // 3 moment chunks per run
  std::vector<double> stats[2];
  std::vector<float> normalized[2], scaled[2];
  for (Backend b : {Backend::cpu, Backend::cuda}) {
    RunNorms norms(b, dim, runs);
    uint32_t seed = 30;
    Buffer<float> y(b, size_t(runs * n * dim)), z(b, size_t(runs * n * dim));
    for (int round = 0; round < 3; ++round) {
      std::vector<float> x = randn<float>(size_t(runs * n * dim), seed++);
      for (size_t i = 0; i < x.size(); ++i) x[i] = 10.0f * float(i / size_t(n * dim)) + float(1 + i % 3) * x[i];
      const Buffer<float> xb = Buffer<float>::copy_of(b, x);
      norms.update(xb.data(), n);
      norms.normalize(xb.data(), y.data(), n);
      norms.scale(xb.data(), z.data(), n);
    }
    for (int r = 0; r < runs; ++r)
      for (double v : norms[r].stats()) stats[b == Backend::cuda].push_back(v);
    normalized[b == Backend::cuda] = y.to_host();
    scaled[b == Backend::cuda] = z.to_host();
  }
  double worst = 0, worst_y = 0;
  for (size_t i = 0; i < stats[0].size(); ++i)
    worst = std::fmax(worst, std::fabs(stats[1][i] - stats[0][i]) / (1.0 + std::fabs(stats[0][i])));
  for (size_t i = 0; i < normalized[0].size(); ++i) {
    worst_y = std::fmax(worst_y, std::fabs(double(normalized[1][i]) - normalized[0][i]));
    worst_y = std::fmax(worst_y, std::fabs(double(scaled[1][i]) - scaled[0][i]));
  }
  DYN_EXPECT_WITHIN("seed_batch/stats_rel_diff", worst, 1e-12);
  DYN_EXPECT_WITHIN("seed_batch/normalized_abs_diff", worst_y, 1e-5);
}
