// CUDA vs CPU parity of whole physics-env rollouts (label gpu): the same seeds and random actions on both backends.
// The env math is the same DYN_HD code; the device contracts multiply-adds (the host reference does not), and
// contacts amplify the difference, so early steps are compared tightly and whole episodes by their mean reward.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/buffer.h"
#include "sim/physics_env.h"
#include "tests/gpu_guard.h"

using namespace dyn;

namespace {

struct Trace {
  std::vector<std::vector<float>> obs;  // [steps + 1][N · obs]
  double mean_reward = 0;
};

Trace rollout(Backend b, PhysicsTask task, int64_t n, int steps) {
  PhysicsEnvParams p = physics_env_params(task);
  p.seed = 17;
  const int od = physics_obs_dim(task), ad = physics_action_dim(task);
  Buffer<PhysicsEnvState> state(b, n);
  Buffer<float> obs(b, n * od), actions(b, n * ad), reward(b, n);
  Buffer<uint8_t> send(b, n), trunc(b, n), term(b, n);
  Buffer<int32_t> sid(b, n);
  const PhysicsEnvBatch envs(b, p);
  envs.reset(state.data(), obs.data(), n, 0);
  const PhysicsBatchOut out{obs.data(), reward.data(), send.data(), trunc.data(), term.data(), sid.data(), nullptr};
  Trace tr;
  tr.obs.push_back(obs.to_host());
  for (int t = 0; t < steps; ++t) {
    envs.policy(false, state.data(), actions.data(), n, uint32_t(t));
    envs.step(state.data(), actions.data(), out, n, uint32_t(t));
    tr.obs.push_back(obs.to_host());
    for (float r : reward.to_host()) tr.mean_reward += r / (double(n) * steps);
  }
  return tr;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = std::fabs(double(a[i]) - double(b[i]));
    d = std::isfinite(x) ? std::fmax(d, x) : INFINITY;
  }
  return d;
}

}  // namespace

TEST(PhysicsGpuParity, RolloutsMatchCpu) {
  DYN_REQUIRE_CUDA();
  for (PhysicsTask task : {PhysicsTask::reacher, PhysicsTask::cheetah_vel, PhysicsTask::cheetah_wind_vel}) {
    const Trace c = rollout(Backend::cpu, task, 256, 400), g = rollout(Backend::cuda, task, 256, 400);
    EXPECT_LT(max_abs_diff(c.obs[0], g.obs[0]), 1e-5) << "reset, task " << int(task);
    EXPECT_LT(max_abs_diff(c.obs[1], g.obs[1]), 1e-3) << "first step, task " << int(task);
    EXPECT_LT(max_abs_diff(c.obs[5], g.obs[5]), 5e-2) << "fifth step, task " << int(task);
    EXPECT_NEAR(g.mean_reward, c.mean_reward, 0.05 * std::fabs(c.mean_reward)) << "task " << int(task);
  }
}
