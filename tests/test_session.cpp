// The DLCMDP session process: lengths sum to H and are positive, the Poisson/Bernoulli/fixed models have the
// stated laws, and the fallback for tiny H/K stays valid.
#include <gtest/gtest.h>

#include <vector>

#include "sim/session.h"
#include "tests/stats.h"

using namespace dyn;

namespace {

// Runs one episode of the session process for env `env` starting at global step `start` and returns the
// session lengths, checking the per-step flags on the way.
std::vector<int> episode_lengths(const SessionParams& p, uint32_t seed, uint32_t env, uint32_t start) {
  SessionState s;
  session_begin_episode(p, s, seed, env, start);
  std::vector<int> lengths;
  int len = 0, expected_id = 0;
  for (int t = 0; t < p.horizon; ++t) {
    const SessionTick tick = session_advance(p, s, seed, env, start + uint32_t(t));
    EXPECT_EQ(tick.session_id, expected_id);
    EXPECT_EQ(tick.truncated, t == p.horizon - 1) << "t " << t;
    ++len;
    if (tick.session_end) {
      lengths.push_back(len);
      len = 0;
      ++expected_id;
    }
  }
  EXPECT_EQ(len, 0) << "the last step must close the last session";
  return lengths;
}

SessionParams params(int h, int k, SessionModel m, float p = 0) {
  SessionParams sp;
  sp.horizon = h;
  sp.sessions = k;
  sp.model = m;
  sp.switch_prob = p;
  return sp;
}

}  // namespace

class SessionLengths : public ::testing::TestWithParam<std::tuple<int, int, SessionModel>> {};

TEST_P(SessionLengths, SumToHorizonAndArePositive) {
  const auto [h, k, model] = GetParam();
  const SessionParams p = params(h, k, model);
  for (uint32_t env = 0; env < 2000; ++env) {
    const std::vector<int> l = episode_lengths(p, 3, env, env * 7919u);
    ASSERT_EQ(int(l.size()), k) << "poisson and fixed give exactly K sessions";
    int sum = 0;
    for (int x : l) {
      ASSERT_GT(x, 0);
      sum += x;
    }
    ASSERT_EQ(sum, h);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SessionLengths,
    ::testing::Values(std::make_tuple(60, 4, SessionModel::poisson), std::make_tuple(400, 4, SessionModel::poisson),
                      std::make_tuple(400, 50, SessionModel::poisson),
                      std::make_tuple(400, 400, SessionModel::poisson),  // rejection always fails: fixed fallback
                      std::make_tuple(200, 8, SessionModel::poisson), std::make_tuple(1, 1, SessionModel::poisson),
                      std::make_tuple(60, 4, SessionModel::fixed), std::make_tuple(61, 4, SessionModel::fixed),
                      std::make_tuple(400, 400, SessionModel::fixed)));

TEST(Session, FixedLengthsDifferByAtMostOne) {
  const std::vector<int> l = episode_lengths(params(61, 4, SessionModel::fixed), 0, 0, 0);
  EXPECT_EQ(l, (std::vector<int>{15, 15, 15, 16}));
}

TEST(Session, PoissonMeanIsHOverK) {
  // H = 400, K = 4: the rejection (sum of 3 Poisson(100) >= 400) essentially never happens, so the first K-1
  // lengths are plain Poisson(100)
  const SessionParams p = params(400, 4, SessionModel::poisson);
  std::vector<int> first;
  for (uint32_t env = 0; env < 20000; ++env) {
    const std::vector<int> l = episode_lengths(p, 5, env, 0);
    first.insert(first.end(), l.begin(), l.end() - 1);
  }
  const Moments m = moments(first);
  EXPECT_NEAR(m.mean, 100.0, kSigmas * se_mean(100.0, first.size()));
  EXPECT_NEAR(m.var, 100.0, kSigmas * se_var(100.0, 100.0 * 301.0, first.size()));
}

TEST(Session, PoissonMeanForGridworld) {
  // H = 60, K = 4: λ = 15; the rejection of sums >= 60 (P ≈ 1.7%) lowers the mean slightly below 15
  const SessionParams p = params(60, 4, SessionModel::poisson);
  std::vector<int> first;
  for (uint32_t env = 0; env < 20000; ++env) {
    const std::vector<int> l = episode_lengths(p, 6, env, 0);
    first.insert(first.end(), l.begin(), l.end() - 1);
  }
  const Moments m = moments(first);
  EXPECT_NEAR(m.mean, 15.0, 0.3);
  EXPECT_LT(m.mean, 15.0);
}

TEST(Session, ConsecutiveEpisodesDrawNewLengths) {
  const SessionParams p = params(60, 4, SessionModel::poisson);
  int same = 0;
  for (uint32_t env = 0; env < 200; ++env) same += episode_lengths(p, 1, env, 0) == episode_lengths(p, 1, env, 60);
  EXPECT_LT(same, 10);
}

TEST(Session, BernoulliZeroIsOneSession) {
  const SessionParams p = params(60, 4, SessionModel::bernoulli, 0.0f);
  for (uint32_t env = 0; env < 500; ++env) EXPECT_EQ(episode_lengths(p, 2, env, 0), std::vector<int>{60});
}

TEST(Session, BernoulliOneIsHSessions) {
  const SessionParams p = params(60, 4, SessionModel::bernoulli, 1.0f);
  for (uint32_t env = 0; env < 500; ++env) EXPECT_EQ(episode_lengths(p, 2, env, 0), std::vector<int>(60, 1));
}

TEST(Session, BernoulliSessionCount) {
  // switches after each of the first H-1 steps with probability p: E[#sessions] = 1 + (H-1)p
  const float prob = 0.1f;
  const SessionParams p = params(60, 4, SessionModel::bernoulli, prob);
  std::vector<int> count;
  for (uint32_t env = 0; env < 20000; ++env) count.push_back(int(episode_lengths(p, 4, env, 0).size()));
  const Moments m = moments(count);
  const double var = 59 * prob * (1 - prob);
  EXPECT_NEAR(m.mean, 1 + 59 * prob, kSigmas * se_mean(var, count.size()));
}

TEST(Session, TwoStateTransitionFollowsMatrix) {
  EXPECT_EQ(two_state_transition(0, 0.2f, 0.1f), 0);
  EXPECT_EQ(two_state_transition(0, 0.2f, 0.3f), 1);
  EXPECT_EQ(two_state_transition(1, 0.2f, 0.2f), 1);
  EXPECT_EQ(two_state_transition(1, 0.2f, 0.9f), 0);
  EXPECT_EQ(two_state_transition(1, 0.0f, 1e-9f), 0);
  EXPECT_EQ(two_state_transition(1, 1.0f, 1.0f), 1);
}
