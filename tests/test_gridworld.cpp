// gridworld rules (SPEC §2): walls clip, rewards, goals, observation scaling, reset_on_switch both ways,
// truncation at H, latent transition frequencies, and the scripted policies' returns.
#include <gtest/gtest.h>

#include <cstring>

#include <cmath>
#include <set>
#include <vector>

#include "algo/scripted_rollout.h"
#include "kernels/buffer.h"
#include "sim/gridworld.h"
#include "tests/env_helpers.h"
#include "tests/stats.h"

using namespace dyn;

namespace {

GridState placed(int ax, int ay, int g0x, int g0y, int g1x, int g1y, int goal) {
  GridState s{};
  s.ax = uint8_t(ax);
  s.ay = uint8_t(ay);
  s.gx[0] = uint8_t(g0x);
  s.gy[0] = uint8_t(g0y);
  s.gx[1] = uint8_t(g1x);
  s.gy[1] = uint8_t(g1y);
  s.goal = uint8_t(goal);
  return s;
}

// One env's step outputs on the host.
struct OneOut {
  float obs[kGridObsDim], final_obs[kGridObsDim];
  float reward;
  uint8_t session_end, truncated, terminated;
  int32_t session_id;
  StepRow view() {
    return StepRow{obs, &reward, &terminated, &truncated, &session_end, &session_id, final_obs, nullptr};
  }
};

// N envs on the CPU backend with time-slice output buffers.
struct Batch {
  int64_t n;
  GridBatchEnv env;
  Buffer<int32_t> actions;
  Buffer<float> obs, reward, final_obs;
  Buffer<uint8_t> session_end, truncated, terminated;
  Buffer<int32_t> session_id;
  Batch(const GridParams& p, int64_t n_envs, Backend b = Backend::cpu)
      : n(n_envs),
        env(b, p, n),
        actions(b, n),
        obs(b, n * kGridObsDim),
        reward(b, n),
        final_obs(b, n * kGridObsDim),
        session_end(b, n),
        truncated(b, n),
        terminated(b, n),
        session_id(b, n) {}
  StepBatch out() {
    StepBatch o;
    o.obs = obs.data();
    o.reward = reward.data();
    o.terminated = terminated.data();
    o.truncated = truncated.data();
    o.session_end = session_end.data();
    o.session_id = session_id.data();
    o.final_obs = final_obs.data();
    return o;
  }
  std::vector<GridState> states() const {
    std::vector<GridState> s(static_cast<size_t>(n));
    std::memcpy(s.data(), env.states(), s.size() * sizeof(GridState));
    return s;
  }
  void reset() { env.reset(obs.data(), nullptr); }
  void random_step(uint32_t t) {
    env.scripted(false, ActionBuffers{actions.data(), nullptr}, t);
    env.step(ActionBatch{actions.data(), nullptr}, out(), t);
  }
};

}  // namespace

TEST(Gridworld, WallsClipMoves) {
  GridState s = placed(0, 0, 4, 4, 3, 3, 0);
  grid_apply_action(s, kLeft);
  grid_apply_action(s, kDown);
  EXPECT_EQ(s.ax, 0);
  EXPECT_EQ(s.ay, 0);
  grid_apply_action(s, kUp);
  grid_apply_action(s, kRight);
  EXPECT_EQ(s.ax, 1);
  EXPECT_EQ(s.ay, 1);
  s.ax = s.ay = 4;
  grid_apply_action(s, kUp);
  grid_apply_action(s, kRight);
  EXPECT_EQ(s.ax, 4);
  EXPECT_EQ(s.ay, 4);
  grid_apply_action(s, kStay);
  EXPECT_EQ(s.ax, 4);
  EXPECT_EQ(s.ay, 4);
  grid_apply_action(s, 17);  // out-of-range actions stay
  EXPECT_EQ(s.ax, 4);
}

TEST(Gridworld, RewardOnlyOnTheRewardingGoal) {
  GridParams p;
  p.session.model = SessionModel::bernoulli;  // no switch during these steps
  p.session.switch_prob = 0.0f;
  OneOut o;
  // step right onto goal 0 (rewarding)
  GridState s = placed(1, 2, 2, 2, 4, 0, 0);
  s.ss = SessionState{0, 0, 60, 0};
  grid_step(p, s, kRight, 0, 0, o.view());
  EXPECT_FLOAT_EQ(o.reward, 1.0f);
  // staying on it keeps paying
  grid_step(p, s, kStay, 0, 1, o.view());
  EXPECT_FLOAT_EQ(o.reward, 1.0f);
  // the other goal pays the step penalty
  s = placed(3, 0, 2, 2, 4, 0, 0);
  s.ss = SessionState{0, 0, 60, 0};
  grid_step(p, s, kRight, 0, 0, o.view());
  EXPECT_FLOAT_EQ(o.reward, -0.1f);
  s.goal = 1;
  grid_step(p, s, kStay, 0, 1, o.view());
  EXPECT_FLOAT_EQ(o.reward, 1.0f);
  EXPECT_EQ(o.terminated, 0);
}

TEST(Gridworld, ObservationIsScaledPositions) {
  GridState s = placed(1, 3, 4, 2, 0, 4, 1);
  float obs[kGridObsDim];
  grid_observe(s, obs);
  const float want[kGridObsDim] = {0.25f, 0.75f, 1.0f, 0.5f, 0.0f, 1.0f};
  for (int k = 0; k < kGridObsDim; ++k) EXPECT_FLOAT_EQ(obs[k], want[k]) << k;
}

TEST(Gridworld, GoalsDistinctOutsideStartBlockAndUniform) {
  GridParams p;
  std::vector<size_t> count(kGridSize * kGridSize, 0);
  std::vector<size_t> rewarding(2, 0);
  const uint32_t n = 200000;
  for (uint32_t env = 0; env < n; ++env) {
    GridState s;
    grid_reset(p, s, env, 0);
    ASSERT_EQ(s.ax, 0);
    ASSERT_EQ(s.ay, 0);
    ASSERT_FALSE(s.gx[0] == s.gx[1] && s.gy[0] == s.gy[1]);
    for (int g = 0; g < 2; ++g) {
      ASSERT_FALSE(s.gx[g] < 2 && s.gy[g] < 2) << "goal in the start block";
      ASSERT_LT(s.gx[g], kGridSize);
      ASSERT_LT(s.gy[g], kGridSize);
      ++count[s.gy[g] * kGridSize + s.gx[g]];
    }
    ++rewarding[s.goal];
  }
  // each of the 21 cells holds a goal with probability 2/21
  const double q = 2.0 / 21, se = std::sqrt(q * (1 - q) / n);
  for (int c = 0; c < kGridSize * kGridSize; ++c) {
    if (c % kGridSize < 2 && c / kGridSize < 2) continue;
    EXPECT_NEAR(double(count[c]) / n, q, kSigmas * se) << "cell " << c;
  }
  EXPECT_NEAR(double(rewarding[0]) / n, 0.5, kSigmas * std::sqrt(0.25 / n));
}

class ResetOnSwitch : public ::testing::TestWithParam<bool> {};

TEST_P(ResetOnSwitch, AgentReturnsToStartOnlyWhenSet) {
  GridParams p;
  p.session.model = SessionModel::fixed;  // sessions of 15 steps: the 15th step (t = 14) ends session 0
  p.session.reset_on_switch = GetParam();
  GridState s;
  grid_reset(p, s, 0, 0);
  const uint8_t g0x = s.gx[0], g0y = s.gy[0], g1x = s.gx[1], g1y = s.gy[1];
  OneOut o;
  for (int t = 0; t < 14; ++t) {
    grid_step(p, s, t % 2 ? kUp : kRight, 0, uint32_t(t), o.view());
    EXPECT_EQ(o.session_end, 0);
    EXPECT_EQ(o.session_id, 0);
  }
  const uint8_t ax = s.ax, ay = s.ay;
  ASSERT_FALSE(ax == 0 && ay == 0);
  grid_step(p, s, kStay, 0, 14, o.view());
  EXPECT_EQ(o.session_end, 1);
  EXPECT_EQ(o.session_id, 0);
  EXPECT_EQ(o.truncated, 0);
  if (GetParam()) {
    EXPECT_EQ(s.ax, 0);
    EXPECT_EQ(s.ay, 0);
    EXPECT_FLOAT_EQ(o.obs[0], 0.0f);
    EXPECT_FLOAT_EQ(o.final_obs[0], ax / 4.0f) << "final_obs keeps the pre-reset observation";
    EXPECT_FLOAT_EQ(o.final_obs[1], ay / 4.0f);
  } else {
    EXPECT_EQ(s.ax, ax);
    EXPECT_EQ(s.ay, ay);
  }
  // the goals stay across sessions either way
  EXPECT_EQ(s.gx[0], g0x);
  EXPECT_EQ(s.gy[0], g0y);
  EXPECT_EQ(s.gx[1], g1x);
  EXPECT_EQ(s.gy[1], g1y);
  grid_step(p, s, kStay, 0, 15, o.view());
  EXPECT_EQ(o.session_id, 1);
}

INSTANTIATE_TEST_SUITE_P(BothWays, ResetOnSwitch, ::testing::Bool());

TEST(Gridworld, TruncatesAtHorizonAndAutoResets) {
  GridParams p;
  Batch b(p, 64);
  b.reset();
  const std::vector<GridState> first = b.states();
  for (int t = 0; t < 60; ++t) {
    b.random_step(uint32_t(t));
    const auto trunc = b.truncated.to_host(), term = b.terminated.to_host(), end = b.session_end.to_host();
    const auto sid = b.session_id.to_host();
    for (int64_t i = 0; i < b.n; ++i) {
      ASSERT_EQ(trunc[i], t == 59) << "t " << t;
      ASSERT_EQ(term[i], 0);
      if (t == 59) {
        ASSERT_EQ(end[i], 1) << "the last step closes the last session";
        ASSERT_EQ(sid[i], 3) << "K = 4 sessions under the poisson model";
      }
    }
  }
  // a new episode: t = 0, agent at the start, new goals for most envs
  const std::vector<GridState> next = b.states();
  int same_goals = 0;
  for (int64_t i = 0; i < b.n; ++i) {
    EXPECT_EQ(next[i].ss.t, 0);
    EXPECT_EQ(next[i].ss.session, 0);
    EXPECT_EQ(next[i].ax, 0);
    same_goals += next[i].gx[0] == first[i].gx[0] && next[i].gy[0] == first[i].gy[0] &&
                  next[i].gx[1] == first[i].gx[1] && next[i].gy[1] == first[i].gy[1];
  }
  EXPECT_LT(same_goals, 4);
}

TEST(Gridworld, LatentTransitionFrequenciesMatchMatrix) {
  GridParams p;  // stay 0.2, switch 0.8
  Batch b(p, 4096);
  b.reset();
  size_t switches = 0, stays = 0;
  std::vector<GridState> before = b.states();
  for (int t = 0; t < 600; ++t) {
    b.random_step(uint32_t(t));
    const std::vector<GridState> after = b.states();
    const auto end = b.session_end.to_host(), trunc = b.truncated.to_host();
    for (int64_t i = 0; i < b.n; ++i) {
      if (end[i] && !trunc[i]) {
        (after[i].goal == before[i].goal ? stays : switches) += 1;
      } else if (!end[i]) {
        ASSERT_EQ(after[i].goal, before[i].goal) << "the latent is fixed within a session";
      }
    }
    before = after;
  }
  const size_t n = stays + switches;
  ASSERT_GT(n, 100000u);
  EXPECT_NEAR(double(stays) / n, 0.2, kSigmas * std::sqrt(0.2 * 0.8 / n));
}

TEST(Gridworld, OracleWalksShortestPath) {
  GridParams p;
  p.session.model = SessionModel::bernoulli;  // one long session
  p.session.switch_prob = 0.0f;
  OneOut o;
  for (int g = 0; g < kGridGoalCells; ++g) {
    GridState s = placed(0, 0, 0, 0, 0, 0, 1);
    grid_goal_cell(g, s.gx[1], s.gy[1]);
    s.gx[0] = s.gx[1] == 4 ? 3 : 4;  // the other goal somewhere else
    s.gy[0] = 4;
    s.ss = SessionState{0, 0, 60, 0};
    const int dist = s.gx[1] + s.gy[1];
    int t = 0;
    do {
      grid_step(p, s, grid_oracle_action(s), 0, uint32_t(t), o.view());
      ++t;
    } while (o.reward <= 0 && t < 20);
    EXPECT_EQ(t, dist) << "goal cell " << g;
  }
}

TEST(Gridworld, ScriptedPolicyReturns) {
  // oracle: the ceiling; SPEC expects about 44.4 with reset_on_switch and about 50 without
  GridParams p;
  const RolloutSummary oracle = grid_rollout(Backend::cpu, p, ScriptedPolicy::oracle, 2048, 10);
  EXPECT_EQ(oracle.episodes, 20480);
  EXPECT_NEAR(oracle.mean_return, 44.4, 0.5);
  EXPECT_DOUBLE_EQ(oracle.mean_sessions, 4.0);
  const RolloutSummary random = grid_rollout(Backend::cpu, p, ScriptedPolicy::random, 2048, 10);
  EXPECT_LT(random.mean_return, 0.0);
  EXPECT_GT(random.mean_return, -6.0);
  p.session.reset_on_switch = false;
  const RolloutSummary no_reset = grid_rollout(Backend::cpu, p, ScriptedPolicy::oracle, 2048, 10);
  EXPECT_NEAR(no_reset.mean_return, 50.0, 0.7);
}
