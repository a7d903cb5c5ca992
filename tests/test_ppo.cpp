// PPO: GAE against a hand-computed example with a truncation in the middle, the PPO loss' gradients in double
// (ratio clipping, value clipping, entropy), and a learning test on the gridworld.
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "algo/gae.h"
#include "algo/ppo.h"
#include "algo/ppo_loss.h"
#include "algo/rl2.h"
#include "algo/scripted_rollout.h"
#include "nn/distributions.h"
#include "tests/gradcheck.h"
#include "tests/random_vectors.h"

using namespace dyn;

TEST(Gae, HandComputedWithTruncationInTheMiddle) {
  // one env, T = 4: a time limit after step 1 (bootstrap from V(final) = 0.5), a termination after step 3
  const double r[4] = {1.0, 2.0, 3.0, 4.0};
  const double v[5] = {0.1, 0.2, 0.3, 0.4, 9.9};  // v[4] is unused: step 3 terminates
  const uint8_t term[4] = {0, 0, 0, 1}, trunc[4] = {0, 1, 0, 0};
  const double final_v[4] = {0, 0.5, 0, 0};
  const double g = 0.9, l = 0.8;
  double adv[4], ret[4];
  gae_row(4, 1, 0, r, v, term, trunc, final_v, g, l, adv, ret);
  const double d3 = 4.0 + 0.0 - 0.4;  // terminal: no bootstrap
  const double d2 = 3.0 + g * 0.4 - 0.3;
  const double d1 = 2.0 + g * 0.5 - 0.2;  // truncation: V(final), and no carry from step 2
  const double d0 = 1.0 + g * 0.2 - 0.1;
  const double a3 = d3, a2 = d2 + g * l * a3, a1 = d1, a0 = d0 + g * l * a1;
  EXPECT_NEAR(adv[3], a3, 1e-12);
  EXPECT_NEAR(adv[2], a2, 1e-12);
  EXPECT_NEAR(adv[1], a1, 1e-12);
  EXPECT_NEAR(adv[0], a0, 1e-12);
  EXPECT_NEAR(ret[0], a0 + 0.1, 1e-12);
  EXPECT_NEAR(ret[2], a2 + 0.3, 1e-12);
}

TEST(PpoLoss, GradientsInDouble) {
  // loss = mean_i [policy_i + c_v · value_i − c_e · entropy_i] over logits [N, A] and values [N]; the samples
  // are chosen so that some ratios are clipped, some value predictions are clipped, and some are not
  const int n = 24, a = 5;
  const double clip = 0.2, cv = 0.5, ce = 0.01;
  std::vector<double> z = randn(size_t(n) * a, 1), v = randn(n, 2);
  const std::vector<double> old_z = randn(size_t(n) * a, 3, 0.3), adv = randn(n, 4), ret = randn(n, 5);
  std::vector<double> old_v = v;
  for (int i = 0; i < n; ++i) old_v[i] += (i % 3 == 0) ? 0.5 : 0.05;  // some beyond the clip range
  std::vector<int> act(n);
  for (int i = 0; i < n; ++i) act[i] = i % a;
  std::vector<double> old_logp(n);
  for (int i = 0; i < n; ++i) old_logp[i] = categorical_log_prob(old_z.data() + i * a, a, act[i]);
  auto loss = [&] {
    double l = 0;
    for (int i = 0; i < n; ++i) {
      const double lp = categorical_log_prob(z.data() + i * a, a, act[i]);
      const PpoSample<double> s = ppo_sample(lp, old_logp[i], adv[i], v[i], old_v[i], ret[i], clip);
      l += (s.policy + cv * s.value - ce * categorical_entropy(z.data() + i * a, a)) / n;
    }
    return l;
  };
  std::vector<double> dz(z.size(), 0.0), dv(n, 0.0);
  int clipped = 0, value_clipped = 0;
  for (int i = 0; i < n; ++i) {
    const double lp = categorical_log_prob(z.data() + i * a, a, act[i]);
    const PpoSample<double> s = ppo_sample(lp, old_logp[i], adv[i], v[i], old_v[i], ret[i], clip);
    clipped += s.clipped;
    value_clipped += std::fabs(v[i] - old_v[i]) > clip;
    categorical_log_prob_grad(z.data() + i * a, a, act[i], s.d_logp / n, dz.data() + i * a);
    categorical_entropy_grad(z.data() + i * a, a, -ce / n, dz.data() + i * a);
    dv[i] = cv * s.d_value / n;
  }
  EXPECT_GT(clipped, 0) << "the example must exercise ratio clipping";
  EXPECT_LT(clipped, n);
  EXPECT_GT(value_clipped, 0);
  EXPECT_LT(gradcheck_rel_error(z, dz, loss), kGradTol);
  EXPECT_LT(gradcheck_rel_error(v, dv, loss), kGradTol);
}

TEST(PpoLearning, BeatsRandomOnGridworld) {
  EnvConfig env = default_env_config("gridworld", 1);
  PpoConfig cfg;
  PpoLearner ppo(Backend::cpu, env, 16, cfg);
  const auto t0 = std::chrono::steady_clock::now();
  IterationStats st;
  for (int it = 0; it < 300; ++it) st = ppo.iterate();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const EvalStats ev = ppo.evaluate(256, 4, 777);
  const RolloutSummary random = run_scripted_rollout(Backend::cpu, env, ScriptedPolicy::random, 256, 4);
  std::printf("ppo: %lld frames in %.1f s (%.0f frames/s), eval %.2f ± %.2f, random %.2f\n", (long long)st.frames, secs,
              st.frames / secs, ev.mean_return, ev.ci95, random.mean_return);
  EXPECT_GT(ev.mean_return, random.mean_return + 10.0);
}

TEST(Rl2Learning, BeatsPpoOnGridworld) {
  // RL² can infer which goal pays from its history; state-only PPO cannot. 800k frames, 16 envs, seed 3.
  EnvConfig env = default_env_config("gridworld", 3);
  PpoLearner ppo(Backend::cpu, env, 16, PpoConfig{});
  Rl2Learner rl2(Backend::cpu, env, 16, PpoConfig{});
  while (ppo.frames() < 800000) ppo.iterate();
  while (rl2.frames() < 800000) rl2.iterate();
  const EvalStats p = ppo.evaluate(256, 4, 4242), r = rl2.evaluate(256, 4, 4242);
  std::printf("800k frames: ppo %.2f ± %.2f, rl2 %.2f ± %.2f\n", p.mean_return, p.ci95, r.mean_return, r.ci95);
  EXPECT_GT(r.mean_return, p.mean_return + 2.0);
}
