// The DLCMDP session process: lengths sum to H and are positive, the Poisson/Bernoulli/fixed models have the
// stated laws, and the fallback for tiny H/K stays valid.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "sim/session.h"
#include "tests/stat_laws.h"
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

// χ² tests pass while P(χ²_df > statistic) > kChi2Tail: a correct sampler fails one run in a million.
constexpr double kChi2Tail = 1e-6;

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

// H = 60, K = 4 (gridworld): λ = 15, and the rejection of sums ≥ 60 (P = 1.87%) lowers the mean of the first K−1
// lengths to E[l_i] = 14.8907 (tests/stat_laws.h, exact from the rule). The sample mean of 3 × 300000 lengths has
// SE = sd(l_0 + l_1 + l_2) / (3 √300000) = 0.00385 (the three of an episode are dependent through the rejection);
// measured 14.8940, z = +0.86; bound kSigmas = 5 SE (the former bound [14.7, 15) was 50 SE wide). Rejecting sums
// ≥ H − 1 as well measures 14.8580 (z = −8.5); accepting sums = H would move the mean by +0.028 (7 SE).
TEST(Session, PoissonMeanForGridworldMatchesTheRejectionRule) {
  const SessionParams p = params(60, 4, SessionModel::poisson);
  const SessionLengthLaw law = session_length_law(60, 4, kMaxSessionAttempts);
  const uint32_t episodes = 300000;
  double sum = 0;
  for (uint32_t env = 0; env < episodes; ++env) {
    const std::vector<int> l = episode_lengths(p, 6, env, 0);
    for (int i = 0; i < 3; ++i) sum += l[i];
  }
  const double mean = sum / (3.0 * episodes), se = std::sqrt(law.sum_var / episodes) / 3.0;
  EXPECT_NEAR(law.first_mean, 14.8907, 1e-4) << "the exact law itself";
  EXPECT_NEAR(mean, law.first_mean, kSigmas * se) << "z = " << (mean - law.first_mean) / se;
}

// The whole law of one episode's lengths, H = 60, K = 4: l_0 (a first length) and l_3 (the remainder) against the
// exact probabilities of the rejection rule by χ², tails pooled to ≥ 5 expected; one episode gives one of each,
// so the counts are multinomial. Bound: P(χ² > stat) > kChi2Tail = 1e-6. Measured: l_0 χ² = 29.5 on 28 df
// (p = 0.39), l_3 χ² = 25.0 on 38 df (p = 0.95); rejecting sums ≥ H − 1 as well gives l_3 χ² = 757 (p = 2e-134).
TEST(Session, PoissonLengthsFollowTheRejectionLaw) {
  const SessionParams p = params(60, 4, SessionModel::poisson);
  const SessionLengthLaw law = session_length_law(60, 4, kMaxSessionAttempts);
  const uint32_t episodes = 100000;
  std::vector<size_t> first(61, 0), last(61, 0);
  for (uint32_t env = 0; env < episodes; ++env) {
    const std::vector<int> l = episode_lengths(p, 8, env, 0);
    ASSERT_EQ(l.size(), 4u);
    ++first[l[0]];
    ++last[l[3]];
  }
  const Chi2Fit f = chi2_fit(first, law.first, episodes), g = chi2_fit(last, law.last, episodes);
  EXPECT_GT(f.p_value, kChi2Tail) << "l_0: χ² " << f.stat << " on " << f.df << " df";
  EXPECT_GT(g.p_value, kChi2Tail) << "l_3: χ² " << g.stat << " on " << g.df << " df";
}

// The Poisson sampler's law, not only its mean and variance: χ² of 200000 draws (each from its own counter, as
// session lengths are drawn) against the Poisson pmf, tails pooled to ≥ 5 expected, for the λ = H/K the code
// uses — 2.5 and 8 by inversion (λ < 10), 15 (gridworld), 50 (scratch_itch), 100 (reacher, halfcheetah) by PTRS.
// Bound: P(χ² > stat) > kChi2Tail = 1e-6 for each λ. Measured (χ² / df, p): 2.5: 16.8/11 (0.11), 8: 23.1/22 (0.40),
// 15: 22.2/31 (0.88), 50: 43.9/56 (0.88), 100: 61.8/79 (0.92). A rounded normal approximation in place of PTRS
// (right mean and variance: PoissonMeanIsHOverK passes it) gives χ² = 4274/31, 840/56, 442/79 at λ = 15, 50, 100.
TEST(Session, PoissonSamplerFollowsThePmf) {
  const int shapes[][2] = {{10, 4}, {400, 50}, {60, 4}, {200, 4}, {400, 4}};
  const uint32_t n = 200000;
  for (const auto& hk : shapes) {
    const SessionParams p = params(hk[0], hk[1], SessionModel::poisson);
    const double lambda = double(float(hk[0]) / float(hk[1]));
    const int top = int(lambda + 12 * std::sqrt(lambda) + 20);  // counts[top] holds every draw ≥ top
    std::vector<size_t> count(size_t(top) + 1, 0);
    std::vector<double> pmf(size_t(top) + 1);
    for (int k = 0; k <= top; ++k) pmf[k] = poisson_pmf(k, lambda);
    for (uint32_t i = 0; i < n; ++i) {
      const int k = poisson_session_draw(p, 9, i % 1000, i / 1000, 0, 0);
      ASSERT_GE(k, 0);
      ++count[std::min(k, top)];
    }
    const Chi2Fit fit = chi2_fit(count, pmf, n);
    EXPECT_GT(fit.p_value, kChi2Tail) << "λ = " << lambda << ": χ² " << fit.stat << " on " << fit.df << " df";
  }
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
