// Task rules of reacher and halfcheetah_* (SPEC §2) on the CPU: observations, rewards against the session
// schedules (v_g, f_w, the moving goal, the direction's switch matrix), action clipping, the body kept across
// session switches and reset at the episode's end, the wind, and determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/buffer.h"
#include "sim/physics_env.h"
#include "tests/env_helpers.h"

using namespace dyn;

namespace {

// One env stepped by hand through the DYN_HD functions.
struct OneEnv {
  PhysicsEnvParams p;
  PhysicsEnvState s;
  std::vector<float> obs, final_obs;
  float reward = 0;
  uint8_t session_end = 0, truncated = 0, terminated = 0;
  int32_t session_id = 0;
  uint32_t step_index = 0;
  explicit OneEnv(PhysicsTask task, uint32_t seed = 1) : p(physics_env_params(task)) {
    p.seed = seed;
    obs.resize(size_t(physics_obs_dim(task)));
    final_obs = obs;
    physics_reset(p, p.model, s, 0, 0);
    physics_observe(p, p.model, s, obs.data());
  }
  void step(const std::vector<float>& a) {
    const StepRow o{obs.data(), &reward, &terminated, &truncated, &session_end, &session_id, final_obs.data(), nullptr};
    env_step(PhysicsEnv<>{p, &p.model}, s, 0, a.data(), 0, step_index++, o);
  }
};

double cheetah_velocity(const PhysicsEnvState& before, const PhysicsEnvState& after) {
  return (after.body.q[0] - before.body.q[0]) / 0.05;
}

}  // namespace

TEST(PhysicsEnv, CheetahObservationIsQposTailAndQvel) {
  OneEnv e(PhysicsTask::cheetah_vel);
  e.step(std::vector<float>(6, 0.3f));
  for (int j = 1; j < 9; ++j) EXPECT_EQ(e.obs[size_t(j - 1)], e.s.body.q[j]);
  for (int j = 0; j < 9; ++j) EXPECT_EQ(e.obs[size_t(8 + j)], e.s.body.qd[j]);
}

TEST(PhysicsEnv, CheetahVelRewardFollowsTheSchedule) {
  for (float i : {0.f, 1.f, 2.f, 3.f})
    EXPECT_FLOAT_EQ(cheetah_target_velocity(int(i)), 1.5f + 1.5f * std::sin(0.2f * i));
  OneEnv e(PhysicsTask::cheetah_vel);
  const std::vector<float> a = {0.5f, -2.0f, 0.1f, 0.0f, 1.0f, -0.3f};  // −2 is clipped to −1
  double cost = 0;
  for (float x : a) cost += std::fmin(1.0, std::fabs(x)) * std::fmin(1.0, std::fabs(x));
  int sessions_seen = 0;
  for (int t = 0; t < 400; ++t) {
    const PhysicsEnvState before = e.s;
    const int i = int(before.ss.session);
    e.step(a);
    if (e.truncated) break;
    const double v = cheetah_velocity(before, e.s);
    EXPECT_NEAR(e.reward, -std::fabs(v - cheetah_target_velocity(i)) - 0.05 * cost, 2e-4) << "step " << t;
    sessions_seen = i + 1;
  }
  EXPECT_EQ(sessions_seen, 4);
}

TEST(PhysicsEnv, CheetahDirRewardAndSwitchMatrix) {
  OneEnv e(PhysicsTask::cheetah_dir);
  const std::vector<float> a = {0.6f, 0.0f, -0.8f, 0.0f, 0.0f, 0.0f};
  const PhysicsEnvState before = e.s;
  e.step(a);
  EXPECT_NEAR(e.reward, before.dir * cheetah_velocity(before, e.s) - 0.5 * std::sqrt(0.36 + 0.64), 2e-4);
  // over many envs: the first direction is uniform, and a new session keeps it with probability 0.2
  PhysicsEnvParams p = physics_env_params(PhysicsTask::cheetah_dir);
  p.seed = 5;
  p.session.horizon = 40;  // short episodes: the switches, not the physics, are under test
  const int64_t n = 2048;
  Buffer<float> obs(Backend::cpu, n * kCheetahObsDim), actions(Backend::cpu, n * kCheetahActions),
      reward(Backend::cpu, n);
  Buffer<uint8_t> send(Backend::cpu, n), trunc(Backend::cpu, n), term(Backend::cpu, n);
  Buffer<int32_t> sid(Backend::cpu, n);
  actions.zero();
  PhysicsBatchEnv envs(Backend::cpu, p, n);
  envs.reset(obs.data(), nullptr);
  const PhysicsEnvState* state = envs.states();
  int positive = 0;
  for (int64_t i = 0; i < n; ++i) positive += state[i].dir > 0;
  EXPECT_NEAR(positive / double(n), 0.5, 0.04);
  const StepBatch out = StepBatch::of(obs.data(), reward.data(), term.data(), trunc.data(), send.data(), sid.data());
  std::vector<int8_t> dir(static_cast<size_t>(n));
  int switches = 0, stays = 0;
  for (uint32_t t = 0; t < 39; ++t) {  // one episode (its last step would reset)
    for (int64_t i = 0; i < n; ++i) dir[size_t(i)] = state[i].dir;
    envs.step(ActionBatch{nullptr, actions.data()}, out, t);
    for (int64_t i = 0; i < n; ++i)
      if (send.data()[i]) {
        ++switches;
        stays += state[i].dir == dir[size_t(i)];
      }
  }
  EXPECT_GT(switches, 3 * n - 10);  // K = 4 sessions: three switches per episode
  EXPECT_NEAR(stays / double(switches), 0.2, 0.02);
}

TEST(PhysicsEnv, WindPushesTheTorso) {
  // force mode: the same state and actions with and without the wind; the wind's f_w(0) = 10 N along +x
  EXPECT_FLOAT_EQ(cheetah_wind_force(0), 10.0f);
  EXPECT_FLOAT_EQ(cheetah_wind_force(2), 10.0f + 10.0f * std::sin(0.6f));
  OneEnv wind(PhysicsTask::cheetah_wind_vel), calm(PhysicsTask::cheetah_vel);
  calm.s = wind.s;
  const std::vector<float> a(6, 0.0f);
  for (int t = 0; t < 20; ++t) {
    wind.step(a);
    calm.step(a);
  }
  EXPECT_GT(wind.s.body.q[0] - calm.s.body.q[0], 0.005);  // pushed forward (friction holds some of it back)
  // drift mode: f_w·1e-3 m per substep on top of the same physics for one step from the same state
  OneEnv drift(PhysicsTask::cheetah_wind_vel), still(PhysicsTask::cheetah_vel);
  drift.p.wind_drift = true;
  still.s = drift.s;
  drift.step(a);
  still.step(a);
  EXPECT_NEAR(drift.s.body.q[0] - still.s.body.q[0], 5 * 10 * 1e-3, 5e-3);  // 5 substeps × 10 N · 1e-3 m/N
}

TEST(PhysicsEnv, ReacherObservationRewardAndMovingGoal) {
  OneEnv e(PhysicsTask::reacher, 3);
  const std::vector<float> a = {0.4f, -0.2f};
  std::vector<std::pair<float, float>> goals;
  const float radius = e.s.goal_radius;
  for (int t = 0; t < 400; ++t) {
    const int i = int(e.s.ss.session);
    e.step(a);
    if (e.truncated) break;
    const float ang = e.s.goal_angle * float(i);
    const float gx = e.s.goal_radius * std::cos(ang), gy = e.s.goal_radius * std::sin(ang);
    // observation: cos q, sin q, q̇, fingertip and its velocity from the kinematics
    const float q0 = e.s.body.q[0], q1 = e.s.body.q[1];
    const float tx = 0.1f * std::cos(q0) + 0.11f * std::cos(q0 + q1),
                ty = 0.1f * std::sin(q0) + 0.11f * std::sin(q0 + q1);
    EXPECT_NEAR(e.obs[0], std::cos(q0), 1e-6);
    EXPECT_NEAR(e.obs[3], std::sin(q1), 1e-6);
    EXPECT_NEAR(e.obs[6], tx, 1e-5);
    EXPECT_NEAR(e.obs[7], ty, 1e-5);
    const float w0 = e.s.body.qd[0], w1 = e.s.body.qd[1];
    EXPECT_NEAR(e.obs[8], -0.1f * std::sin(q0) * w0 - 0.11f * std::sin(q0 + q1) * (w0 + w1), 1e-4);
    if (e.session_end) goals.emplace_back(gx, gy);
    const float dist = std::hypot(tx - gx, ty - gy);
    EXPECT_NEAR(e.reward, -dist - 0.05f * std::sqrt(0.16f + 0.04f), 1e-5) << "step " << t;
  }
  ASSERT_GE(goals.size(), 3u);
  for (const auto& [x, y] : goals) EXPECT_NEAR(std::hypot(x, y), radius, 1e-6);                     // on one circle
  EXPECT_GT(std::hypot(goals[0].first - goals[1].first, goals[0].second - goals[1].second), 1e-3);  // it moves
}

TEST(PhysicsEnv, BodyKeptAcrossSessionsAndResetAtEpisodeEnd) {
  OneEnv e(PhysicsTask::cheetah_vel, 7);
  const std::vector<float> a(6, 0.5f);
  bool saw_switch = false;
  for (int t = 0; t < 400; ++t) {
    const PhysicsEnvState before = e.s;
    e.step(a);
    if (e.session_end && !e.truncated) {
      saw_switch = true;
      EXPECT_GT(std::fabs(e.s.body.q[0] - before.body.q[0]), 0.0f);
      EXPECT_LT(std::fabs(e.s.body.q[0] - before.body.q[0]), 0.5f);  // continuous motion, no reset
    }
    if (e.truncated) {
      EXPECT_EQ(t, 399);
      for (int j = 0; j < 9; ++j) EXPECT_LE(std::fabs(e.s.body.q[j]), 0.1f) << "reset noise U(−0.1, 0.1)";
      for (int k = 0; k < kCheetahObsDim; ++k) EXPECT_NE(e.final_obs[size_t(k)], e.obs[size_t(k)]);
    }
  }
  EXPECT_TRUE(saw_switch);
}

TEST(PhysicsEnv, RolloutsAreDeterministic) {
  for (PhysicsTask task : {PhysicsTask::reacher, PhysicsTask::cheetah_wind_vel}) {
    std::vector<float> last[3];
    for (int run = 0; run < 3; ++run) {
      PhysicsEnvParams p = physics_env_params(task);
      p.seed = run < 2 ? 11 : 12;
      const int64_t n = 8;
      const int od = physics_obs_dim(task), ad = physics_action_dim(task);
      Buffer<float> obs(Backend::cpu, n * od), actions(Backend::cpu, n * ad), reward(Backend::cpu, n);
      Buffer<uint8_t> send(Backend::cpu, n), trunc(Backend::cpu, n), term(Backend::cpu, n);
      Buffer<int32_t> sid(Backend::cpu, n);
      PhysicsBatchEnv envs(Backend::cpu, p, n);
      envs.reset(obs.data(), nullptr);
      const StepBatch out =
          StepBatch::of(obs.data(), reward.data(), term.data(), trunc.data(), send.data(), sid.data());
      for (uint32_t t = 0; t < 50; ++t) {
        envs.scripted(false, ActionBuffers{nullptr, actions.data()}, t);
        envs.step(ActionBatch{nullptr, actions.data()}, out, t);
      }
      last[run] = obs.to_host();
    }
    EXPECT_EQ(last[0], last[1]);
    EXPECT_NE(last[0], last[2]);
  }
}

namespace {

// Mean episode return of the reacher oracle over n envs for one episode, with the model's integrator set.
double reacher_oracle_return(Integrator integrator, int64_t n) {
  PhysicsEnvParams p = physics_env_params(PhysicsTask::reacher);
  p.model.integrator = integrator;
  p.seed = 31;
  Buffer<float> obs(Backend::cpu, n * kReacherObsDim), actions(Backend::cpu, n * kReacherActions),
      reward(Backend::cpu, n);
  Buffer<uint8_t> send(Backend::cpu, n), trunc(Backend::cpu, n), term(Backend::cpu, n);
  Buffer<int32_t> sid(Backend::cpu, n);
  PhysicsBatchEnv envs(Backend::cpu, p, n);
  envs.reset(obs.data(), nullptr);
  const StepBatch out = StepBatch::of(obs.data(), reward.data(), term.data(), trunc.data(), send.data(), sid.data());
  double total = 0;
  for (uint32_t t = 0; t < 400; ++t) {
    envs.scripted(true, ActionBuffers{nullptr, actions.data()}, t);
    envs.step(ActionBatch{nullptr, actions.data()}, out, t);
    for (int64_t i = 0; i < n; ++i) total += reward.data()[i];
  }
  return total / double(n);
}

}  // namespace

// The reacher's two integrators under the closed-loop oracle over whole 400-step episodes: the same return.
TEST(PhysicsEnv, ReacherOracleReturnSameWithEulerAndRk4) {
  const double rk4 = reacher_oracle_return(Integrator::rk4, 64), euler = reacher_oracle_return(Integrator::euler, 64);
  std::printf("reacher oracle return, 64 envs × 400 steps: RK4 %.3f, Euler %.3f\n", rk4, euler);
  // 0.40 apart measured (0.001 per step), against the ~80 that separate the oracle from a random policy (−87)
  EXPECT_NEAR(euler, rk4, 1.0);
}
