// CUDA vs CPU parity of scratch_itch rollouts (label gpu): the same seeds and scripted actions (the oracle's, then
// random ones) on both backends. The arm is kinematic, with no stiff solve to amplify the device's contracted
// multiply-adds and its own sinf/cosf, so whole episodes stay within float rounding of the host's.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/buffer.h"
#include "sim/scratch_itch.h"
#include "tests/bounds.h"
#include "tests/env_helpers.h"
#include "tests/gpu_guard.h"

using namespace dyn;

namespace {

struct Trace {
  std::vector<float> obs, reward, latent;  // every step's, [steps + 1, N, ·] (rewards from step 1)
};

Trace rollout(Backend b, int64_t n, int steps, bool oracle) {
  ScratchParams p = scratch_params();
  p.seed = 23;
  ScratchBatchEnv envs(b, p, n);
  StepBuffers io(b, envs.spec(), n);
  io.reset(envs);
  Trace tr;
  tr.obs = io.obs.to_host();
  for (int t = 0; t < steps; ++t) {
    io.scripted_step(envs, oracle, uint32_t(t));
    for (float v : io.obs.to_host()) tr.obs.push_back(v);
    for (float v : io.reward.to_host()) tr.reward.push_back(v);
    for (float v : io.latent.to_host()) tr.latent.push_back(v);
  }
  return tr;
}

}  // namespace

// Two whole episodes (a reset in between) of 1,024 envs under random actions, and one under the oracle, whose
// contacts and scratch bonuses hinge on millimetres: observations and rewards within float rounding, the latents
// (the itch, from the same session draws) equal.
TEST(ScratchItchGpuParity, RolloutsMatchCpu) {
  DYN_REQUIRE_CUDA();
  for (bool oracle : {false, true}) {
    const int steps = oracle ? 200 : 400;
    const Trace c = rollout(Backend::cpu, 1024, steps, oracle), g = rollout(Backend::cuda, 1024, steps, oracle);
    const std::string at = oracle ? "oracle/" : "random/";
    ASSERT_EQ(c.obs.size(), g.obs.size());
    DYN_EXPECT_WITHIN(at + "obs_max_abs_diff", max_abs_diff(c.obs, g.obs), 1e-3);
    DYN_EXPECT_WITHIN(at + "latent_max_abs_diff", max_abs_diff(c.latent, g.latent), 1e-6);
    double mean_c = 0, mean_g = 0;
    for (size_t i = 0; i < c.reward.size(); ++i) {
      mean_c += c.reward[i] / double(c.reward.size());
      mean_g += g.reward[i] / double(g.reward.size());
    }
    // a scratch that counts on one backend and not the other moves one reward by 5: allow one in 10,000 steps
    DYN_EXPECT_WITHIN(at + "mean_reward_abs_diff", std::fabs(mean_c - mean_g), 5.0 / 10000.0);
  }
}
