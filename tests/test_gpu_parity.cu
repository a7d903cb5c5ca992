// CPU vs CUDA parity (label gpu): Philox draws and whole gridworld rollouts must be bit-identical for the same
// seed. Skipped without a device; fails under DYN_REQUIRE_GPU=1 if none is found.
#include <gtest/gtest.h>

#include "algo/scripted_rollout.h"
#include "kernels/buffer.h"
#include "kernels/parallel_for.cuh"
#include "kernels/philox.h"
#include "tests/gpu_guard.h"
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

TEST(GpuParity, ScriptedRolloutSummariesAgree) {
  DYN_REQUIRE_CUDA();
  GridParams p;
  const RolloutSummary c = run_scripted_rollout(Backend::cpu, p, ScriptedPolicy::oracle, 8192, 5);
  const RolloutSummary g = run_scripted_rollout(Backend::cuda, p, ScriptedPolicy::oracle, 8192, 5);
  EXPECT_EQ(c.episodes, g.episodes);
  EXPECT_NEAR(c.mean_return, g.mean_return, 1e-6 * std::fabs(c.mean_return));
  EXPECT_DOUBLE_EQ(c.mean_sessions, g.mean_sessions);
}
