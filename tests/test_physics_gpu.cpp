// CUDA vs CPU parity of whole physics-env rollouts (label gpu): the same seeds and random actions on both backends.
// The env math is the same DYN_HD code; the device contracts multiply-adds (the host reference does not), and
// contacts amplify the difference, so early steps are compared tightly and whole episodes by their mean reward.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/buffer.h"
#include "sim/physics_env.h"
#include "tests/bounds.h"
#include "tests/env_helpers.h"
#include "tests/gpu_guard.h"

using namespace dyn;

namespace {

struct Trace {
  std::vector<std::vector<float>> obs;  // [steps + 1][N · obs]
  std::vector<double> env_reward;       // [N] each env's mean reward per step
  double mean_reward = 0;               // over envs and steps
};

Trace rollout(Backend b, PhysicsTask task, int64_t n, int steps) {
  PhysicsEnvParams p = physics_env_params(task);
  p.seed = 17;
  const int od = physics_obs_dim(task), ad = physics_action_dim(task);
  Buffer<float> obs(b, n * od), actions(b, n * ad), reward(b, n);
  Buffer<uint8_t> send(b, n), trunc(b, n), term(b, n);
  Buffer<int32_t> sid(b, n);
  PhysicsBatchEnv envs(b, p, n);
  envs.reset(obs.data(), nullptr);
  const StepBatch out = StepBatch::of(obs.data(), reward.data(), term.data(), trunc.data(), send.data(), sid.data());
  Trace tr;
  tr.obs.push_back(obs.to_host());
  for (int t = 0; t < steps; ++t) {
    envs.scripted(false, ActionBuffers{nullptr, actions.data()}, uint32_t(t));
    envs.step(ActionBatch{nullptr, actions.data()}, out, uint32_t(t));
    tr.obs.push_back(obs.to_host());
    const std::vector<float> r = reward.to_host();
    tr.env_reward.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) tr.env_reward[size_t(i)] += r[size_t(i)] / double(steps);
  }
  for (double r : tr.env_reward) tr.mean_reward += r / double(n);
  return tr;
}

double std_over_envs(const Trace& t) {
  double s = 0;
  for (double r : t.env_reward) s += (r - t.mean_reward) * (r - t.mean_reward);
  return std::sqrt(s / double(t.env_reward.size() - 1));
}

const char* task_name(PhysicsTask t) {
  return t == PhysicsTask::reacher       ? "reacher"
         : t == PhysicsTask::cheetah_vel ? "halfcheetah_vel"
                                         : "halfcheetah_wind_vel";
}

// The first steps agree to float rounding: the same Philox draws and the same float engine, but the device contracts
// a·b + c into FMAs and has its own sinf/cosf (the host does neither), and the stiff contact solve amplifies those
// ulps. `steps` later the rollouts are apart (chaos), so only their statistics are compared.
void expect_first_steps_match(PhysicsTask task, const Trace& c, const Trace& g, const std::string& at) {
  DYN_EXPECT_WITHIN(at + "reset_obs_max_abs_diff", max_abs_diff(c.obs[0], g.obs[0]), 1e-6);  // a few ulps of O(1)
  DYN_EXPECT_WITHIN(at + "step1_obs_max_abs_diff", max_abs_diff(c.obs[1], g.obs[1]),
                    task == PhysicsTask::reacher ? 1e-5 : 1e-4);  // the cheetah: 5 substeps with contacts
  if (c.obs.size() > 5) DYN_EXPECT_WITHIN(at + "step5_obs_max_abs_diff", max_abs_diff(c.obs[5], g.obs[5]), 1e-2);
}

}  // namespace

TEST(PhysicsGpuParity, RolloutsMatchCpu) {
  DYN_REQUIRE_CUDA();
  for (PhysicsTask task : {PhysicsTask::reacher, PhysicsTask::cheetah_vel, PhysicsTask::cheetah_wind_vel}) {
    const Trace c = rollout(Backend::cpu, task, 256, 400), g = rollout(Backend::cuda, task, 256, 400);
    const std::string at = std::string(task_name(task)) + "/";
    expect_first_steps_match(task, c, g, at);
    // 400 steps on: two samples of 256 envs' mean reward from one distribution; 4 standard errors
    DYN_EXPECT_WITHIN(at + "mean_reward_abs_diff", std::fabs(g.mean_reward - c.mean_reward),
                      4.0 * std::sqrt((std::pow(std_over_envs(c), 2) + std::pow(std_over_envs(g), 2)) / 256.0));
  }
}

// 65,536 envs (the halfcheetah goal's size): the same first steps as the CPU, then 100 steps on the device with
// every observation finite.
TEST(PhysicsGpuParity, SixtyFourThousandEnvsMatchCpu) {
  DYN_REQUIRE_CUDA();
  const int64_t n = 65536;
  for (PhysicsTask task : {PhysicsTask::reacher, PhysicsTask::cheetah_wind_vel}) {
    const Trace c = rollout(Backend::cpu, task, n, 5), g = rollout(Backend::cuda, task, n, 100);
    expect_first_steps_match(task, c, g, std::string(task_name(task)) + "/");
    int64_t bad = 0;
    for (float v : g.obs.back()) bad += !std::isfinite(v);
    EXPECT_EQ(bad, 0) << task_name(task);
  }
}
