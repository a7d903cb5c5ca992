// The mechanisms every learner shares, each on constructed inputs against an independent computation: the running
// normaliser's clipping and the reward scale's discounted return (reset at episode ends), GAE over several envs with
// different truncations and terminations, advantage normalisation, the evaluation statistics (mean and 95% CI), the
// PPO loss on hand-computed cases, every train.* / belief.* key reaching the learner's config, and the same seed
// giving identical metrics over a few iterations of each learner.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "algo/belief_learner.h"
#include "algo/episode_stats.h"
#include "algo/gae.h"
#include "algo/ppo.h"
#include "algo/ppo_common.h"
#include "algo/ppo_loss.h"
#include "algo/rl2.h"
#include "algo/running_norm.h"
#include "host/config.h"
#include "host/train.h"
#include "tests/random_vectors.h"

using namespace dyn;

TEST(RunningNormPieces, NormalizeAndScaleClipAtTen) {
  RunningNorm norm(Backend::cpu, 2);
  // statistics: column 0 mean 0 var 1, column 1 mean 10 var 4 (two rows each)
  const auto stats_rows = Buffer<float>::copy_of(Backend::cpu, std::vector<float>{-1, 8, 1, 12});
  norm.update(stats_rows.data(), 2);
  const std::vector<double> s = norm.stats();
  EXPECT_NEAR(s[0], 0.0, 1e-3);  // the 1e-4 prior count pulls the mean by 1e-4 relative
  EXPECT_NEAR(s[1], 10.0, 1e-2);
  const auto x = Buffer<float>::copy_of(Backend::cpu, std::vector<float>{0.5f, 14.0f, 100.0f, -1000.0f});
  Buffer<float> y(Backend::cpu, 4), z(Backend::cpu, 4);
  norm.normalize(x.data(), y.data(), 2);
  norm.scale(x.data(), z.data(), 2);
  const std::vector<float> yn = y.to_host(), zs = z.to_host();
  const double sd0 = std::sqrt(s[2] + 1e-8), sd1 = std::sqrt(s[3] + 1e-8);
  EXPECT_NEAR(yn[0], (0.5 - s[0]) / sd0, 1e-5);
  EXPECT_NEAR(yn[1], (14.0 - s[1]) / sd1, 1e-5);
  EXPECT_EQ(yn[2], 10.0f);              // clipped
  EXPECT_EQ(yn[3], -10.0f);             // clipped
  EXPECT_NEAR(zs[0], 0.5 / sd0, 1e-5);  // scale does not centre
  EXPECT_NEAR(zs[1], 14.0 / sd1, 1e-5);
  EXPECT_EQ(zs[2], 10.0f);
  EXPECT_EQ(zs[3], -10.0f);
}

TEST(RewardScale, DiscountedReturnRestartsAtEpisodeEnds) {
  // two envs over 5 steps: env 0 truncates after step 1, env 1 terminates after step 3
  const int T = 5, N = 2;
  const float gamma = 0.9f;
  const float r[T][N] = {{1, 2}, {3, 4}, {5, 6}, {7, 8}, {9, 10}};
  const uint8_t trunc[T][N] = {{0, 0}, {1, 0}, {0, 0}, {0, 0}, {0, 0}};
  const uint8_t term[T][N] = {{0, 0}, {0, 0}, {0, 0}, {0, 1}, {0, 0}};
  Buffer<float> disc(Backend::cpu, N), disc_t(Backend::cpu, size_t(T) * N), rb(Backend::cpu, N);
  Buffer<uint8_t> tb(Backend::cpu, N), mb(Backend::cpu, N);
  EpisodeStats episodes(Backend::cpu, N);
  disc.zero();
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < N; ++i) {
      rb.data()[i] = r[t][i];
      tb.data()[i] = trunc[t][i];
      mb.data()[i] = term[t][i];
    }
    track_discounted_return(Backend::cpu, N, gamma, rb.data(), tb.data(), mb.data(), disc.data(),
                            disc_t.data() + t * N);
    episodes.after_step(rb.data(), tb.data(), mb.data(), nullptr);
  }
  // reference: d_t = γ d_{t−1} + r_t, restarting from 0 after an episode end
  for (int i = 0; i < N; ++i) {
    double d = 0;
    for (int t = 0; t < T; ++t) {
      d = gamma * d + r[t][i];
      EXPECT_NEAR(disc_t.data()[t * N + i], d, 1e-5) << "step " << t << " env " << i;
      if (trunc[t][i] || term[t][i]) d = 0;
    }
  }
  // finished episodes: env 0 returned 1 + 3, env 1 returned 2 + 4 + 6 + 8
  const EpisodeSums* sums = episodes.sums();
  EXPECT_EQ(sums[0].ret, 4.0);
  EXPECT_EQ(sums[0].episodes, 1.0);
  EXPECT_EQ(sums[1].ret, 20.0);
  EXPECT_EQ(sums[1].episodes, 1.0);
  const EvalStats s = episodes.summary();
  EXPECT_DOUBLE_EQ(s.mean_return, 12.0);
  EXPECT_EQ(s.episodes, 2);
}

namespace {

// GAE of one column by the textbook recursion, written independently of gae_row.
void reference_gae(int T, int N, int col, const std::vector<float>& r, const std::vector<float>& v,
                   const std::vector<uint8_t>& term, const std::vector<uint8_t>& trunc,
                   const std::vector<float>& final_v, double gamma, double lambda, std::vector<double>& adv) {
  double next = 0;
  for (int t = T - 1; t >= 0; --t) {
    const size_t i = size_t(t) * N + col;
    double bootstrap = v[i + N];
    if (trunc[i]) bootstrap = final_v[i];
    if (term[i]) bootstrap = 0;
    const double delta = r[i] + gamma * bootstrap - v[i];
    next = delta + ((term[i] || trunc[i]) ? 0.0 : gamma * lambda * next);
    adv[i] = next;
  }
}

}  // namespace

TEST(Gae, SeveralEnvsWithDifferentEndsAndNormalisation) {
  const int T = 7, N = 4;
  const float gamma = 0.97f, lambda = 0.9f;
  const std::vector<float> r = randn<float>(size_t(T) * N, 1), v = randn<float>(size_t(T + 1) * N, 2),
                           fv = randn<float>(size_t(T) * N, 3);
  std::vector<uint8_t> term(size_t(T) * N, 0), trunc(size_t(T) * N, 0);
  trunc[2 * N + 0] = 1;  // env 0: time limit after step 2
  term[4 * N + 1] = 1;   // env 1: terminates after step 4
  trunc[1 * N + 2] = 1;  // env 2: both kinds
  term[5 * N + 2] = 1;
  // env 3: neither
  auto rb = Buffer<float>::copy_of(Backend::cpu, r), vb = Buffer<float>::copy_of(Backend::cpu, v),
       fb = Buffer<float>::copy_of(Backend::cpu, fv);
  auto tb = Buffer<uint8_t>::copy_of(Backend::cpu, term), ub = Buffer<uint8_t>::copy_of(Backend::cpu, trunc);
  Buffer<float> adv(Backend::cpu, size_t(T) * N), ret(Backend::cpu, size_t(T) * N), scalars(Backend::cpu, 2);
  advantages_normalized(Backend::cpu, T, N, rb.data(), vb.data(), tb.data(), ub.data(), fb.data(), gamma, lambda,
                        adv.data(), ret.data(), scalars.data());
  std::vector<double> ref(size_t(T) * N);
  for (int c = 0; c < N; ++c) reference_gae(T, N, c, r, v, term, trunc, fv, gamma, lambda, ref);
  // returns are the raw advantages plus the values; advantages come out normalised over all T·N entries
  double mean = 0, sq = 0;
  for (double a : ref) mean += a / ref.size();
  for (double a : ref) sq += (a - mean) * (a - mean) / ref.size();
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_NEAR(ret.data()[i], ref[i] + v[i], 1e-4) << i;
    EXPECT_NEAR(adv.data()[i], (ref[i] - mean) / (std::sqrt(sq) + 1e-8), 1e-4) << i;
  }
}

TEST(EvalStats, MeanAndCiOfConstructedEpisodes) {
  // two envs: returns {1, 3} (env 0, episodes of one step) and {5} (env 1); mean 3, sample std 2, CI 1.96 · 2 / √3
  EpisodeStats episodes(Backend::cpu, 2);
  const auto r1 = Buffer<float>::copy_of(Backend::cpu, std::vector<float>{1, 5});
  const auto r2 = Buffer<float>::copy_of(Backend::cpu, std::vector<float>{3, 0});
  const auto done1 = Buffer<uint8_t>::copy_of(Backend::cpu, std::vector<uint8_t>{1, 1});
  const auto done2 = Buffer<uint8_t>::copy_of(Backend::cpu, std::vector<uint8_t>{1, 0});
  const auto sid = Buffer<int32_t>::copy_of(Backend::cpu, std::vector<int32_t>{2, 0});
  episodes.after_step(r1.data(), done1.data(), nullptr, sid.data());
  episodes.after_step(r2.data(), done2.data(), nullptr, sid.data());
  const EvalStats s = episodes.summary();
  EXPECT_EQ(s.episodes, 3);
  EXPECT_DOUBLE_EQ(s.mean_return, 3.0);
  EXPECT_NEAR(s.ci95, 1.96 * 2.0 / std::sqrt(3.0), 1e-12);
  EXPECT_DOUBLE_EQ(s.mean_sessions, 7.0 / 3.0);  // session ids + 1: 3, 3, 1
}

TEST(PpoLoss, HandComputedCases) {
  const double clip = 0.2;
  // unclipped, positive advantage: ratio e^0.1, policy = −r A, d/dlogp = −A r
  PpoSample<double> s = ppo_sample(0.1, 0.0, 2.0, 1.0, 1.0, 1.5, clip);
  EXPECT_NEAR(s.ratio, std::exp(0.1), 1e-12);
  EXPECT_NEAR(s.policy, -std::exp(0.1) * 2.0, 1e-12);
  EXPECT_NEAR(s.d_logp, -2.0 * std::exp(0.1), 1e-12);
  EXPECT_FALSE(s.clipped);
  // ratio above 1 + ε with A > 0: the clipped term is the minimum, no gradient
  s = ppo_sample(0.5, 0.0, 2.0, 1.0, 1.0, 1.0, clip);
  EXPECT_NEAR(s.policy, -1.2 * 2.0, 1e-12);
  EXPECT_TRUE(s.clipped);
  EXPECT_EQ(s.d_logp, 0.0);
  // ratio above 1 + ε with A < 0: the unclipped term is the minimum (pessimistic), gradient flows
  s = ppo_sample(0.5, 0.0, -2.0, 1.0, 1.0, 1.0, clip);
  EXPECT_NEAR(s.policy, std::exp(0.5) * 2.0, 1e-12);
  EXPECT_FALSE(s.clipped);
  EXPECT_NEAR(s.d_logp, 2.0 * std::exp(0.5), 1e-12);
  // ratio below 1 − ε with A < 0: clipped, no gradient
  s = ppo_sample(-0.5, 0.0, -2.0, 1.0, 1.0, 1.0, clip);
  EXPECT_NEAR(s.policy, 0.8 * 2.0, 1e-12);
  EXPECT_TRUE(s.clipped);
  EXPECT_EQ(s.d_logp, 0.0);
  // value: v moved 0.5 from old_v (beyond ε), target 2: ½ max((1.5 − 2)², (1.2 − 2)²) = ½ · 0.64 from the clipped one,
  // whose gradient is zero (v_clip does not depend on v)
  s = ppo_sample(0.0, 0.0, 1.0, 1.5, 1.0, 2.0, clip);
  EXPECT_NEAR(s.value, 0.5 * 0.64, 1e-12);
  EXPECT_EQ(s.d_value, 0.0);
  // value inside the clip range: ½ (v − R)², gradient v − R
  s = ppo_sample(0.0, 0.0, 1.0, 1.1, 1.0, 2.0, clip);
  EXPECT_NEAR(s.value, 0.5 * 0.81, 1e-12);
  EXPECT_NEAR(s.d_value, -0.9, 1e-12);
  // the unclipped value loss is the larger one: v moved beyond ε away from the target
  s = ppo_sample(0.0, 0.0, 1.0, 0.5, 1.0, 2.0, clip);
  EXPECT_NEAR(s.value, 0.5 * 2.25, 1e-12);
  EXPECT_NEAR(s.d_value, -1.5, 1e-12);
}

TEST(ConfigKeys, EveryTrainKeyReachesPpoConfig) {
  Config c = Config::builtin("gridworld");
  const std::vector<std::pair<std::string, std::string>> sets = {
      {"train.rollout_steps", "30"}, {"train.epochs", "3"},          {"train.minibatches", "5"},
      {"train.lr", "0.00123"},       {"train.adam_eps", "2e-7"},     {"train.max_grad_norm", "0.7"},
      {"train.gamma", "0.9"},        {"train.gae_lambda", "0.5"},    {"train.clip", "0.15"},
      {"train.vf_coef", "0.25"},     {"train.entropy_coef", "0.03"}, {"train.hidden", "96"}};
  for (const auto& [k, v] : sets) c.set_from_string(k, v, "test");
  const PpoConfig p = ppo_config_of(c);
  EXPECT_EQ(p.rollout_steps, 30);
  EXPECT_EQ(p.epochs, 3);
  EXPECT_EQ(p.minibatches, 5);
  EXPECT_FLOAT_EQ(p.adam.lr, 0.00123f);
  EXPECT_FLOAT_EQ(p.adam.eps, 2e-7f);
  EXPECT_FLOAT_EQ(p.adam.max_grad_norm, 0.7f);
  EXPECT_FLOAT_EQ(p.gamma, 0.9f);  // γ and λ are easy to swap
  EXPECT_FLOAT_EQ(p.gae_lambda, 0.5f);
  EXPECT_FLOAT_EQ(p.clip, 0.15f);
  EXPECT_FLOAT_EQ(p.vf_coef, 0.25f);
  EXPECT_FLOAT_EQ(p.entropy_coef, 0.03f);
  EXPECT_EQ(p.hidden, 96);
  EXPECT_TRUE(p.cuda_graphs);
  c.set_from_string("run.cuda_graphs", "false", "test");
  EXPECT_FALSE(ppo_config_of(c).cuda_graphs);
  EXPECT_EQ(p.shuffle, ShufflePlan::global);
  c.set_from_string("train.shuffle", "per_env", "test");
  EXPECT_EQ(ppo_config_of(c).shuffle, ShufflePlan::per_env);
  c.set_from_string("train.minibatches", "31", "test");  // more minibatches than the 30 steps: per_env refuses it
  EXPECT_THROW(c.validate(), std::exception);
}

TEST(ConfigKeys, EveryBeliefKeyReachesBeliefConfig) {
  Config c = Config::builtin("gridworld");
  c.set_from_string("run.algo", "dynamite", "test");
  const std::vector<std::pair<std::string, std::string>> sets = {{"belief.consistency", "true"},
                                                                 {"belief.conditioning", "false"},
                                                                 {"belief.session_recon", "false"},
                                                                 {"belief.oracle_sessions", "true"},
                                                                 {"belief.beta", "0.7"},
                                                                 {"belief.kl_weight", "0.02"},
                                                                 {"belief.termination_weight", "2"},
                                                                 {"belief.lr", "0.0005"},
                                                                 {"belief.latent", "7"},
                                                                 {"belief.embed", "12"},
                                                                 {"belief.hidden", "48"},
                                                                 {"belief.trunk", "40"},
                                                                 {"belief.normalize_obs", "true"},
                                                                 {"belief.state_decoder", "true"},
                                                                 {"belief.elbo_samples", "20"},
                                                                 {"belief.decode_samples", "30"},
                                                                 {"belief.replay_episodes", "500"},
                                                                 {"belief.batch_episodes", "9"},
                                                                 {"belief.updates", "2"}};
  for (const auto& [k, v] : sets) c.set_from_string(k, v, "test");
  const BeliefConfig b = belief_config_of(c);
  EXPECT_DOUBLE_EQ(b.loss.beta, 0.7);
  EXPECT_FALSE(b.shape.conditioning);
  EXPECT_FALSE(b.loss.conditioning);
  EXPECT_FALSE(b.loss.session_recon);
  EXPECT_TRUE(b.oracle_sessions);
  EXPECT_DOUBLE_EQ(b.loss.kl_weight, 0.02);
  EXPECT_DOUBLE_EQ(b.loss.termination, 2.0);
  EXPECT_FLOAT_EQ(b.adam.lr, 0.0005f);
  EXPECT_EQ(b.shape.latent, 7);
  EXPECT_EQ(b.shape.embed, 12);
  EXPECT_EQ(b.shape.hidden, 48);
  EXPECT_EQ(b.shape.trunk, 40);
  EXPECT_TRUE(b.normalize_obs);
  EXPECT_TRUE(b.shape.state_decoder);
  EXPECT_EQ(b.loss.elbo_samples, 20);
  EXPECT_EQ(b.loss.decode_samples, 30);
  EXPECT_EQ(b.replay_episodes, 500);
  EXPECT_EQ(b.batch_episodes, 9);
  EXPECT_EQ(b.updates_per_iteration, 2);
  c.set_from_string("belief.consistency", "false", "test");  // --no-consistency: β off
  EXPECT_EQ(belief_config_of(c).loss.beta, 0.0);
}

namespace {

// Three iterations of a learner, twice from the same seed and once from another: identical metrics, then different.
template <class Make>
void expect_deterministic(Make make) {
  auto a = make(3u), b = make(3u), c = make(4u);
  bool differs = false;
  for (int it = 0; it < 3; ++it) {
    const IterationStats x = a->iterate(), y = b->iterate(), z = c->iterate();
    EXPECT_EQ(x.train_return, y.train_return) << "iteration " << it;
    EXPECT_EQ(x.policy_loss, y.policy_loss) << "iteration " << it;
    EXPECT_EQ(x.value_loss, y.value_loss) << "iteration " << it;
    EXPECT_EQ(x.grad_norm, y.grad_norm) << "iteration " << it;
    ASSERT_EQ(x.extra.size(), y.extra.size());
    for (size_t k = 0; k < x.extra.size(); ++k) {
      const std::string& name = x.extra[k].first;
      if (name.size() > 2 && name.compare(name.size() - 2, 2, "_s") == 0) continue;  // wall times
      if (std::isnan(x.extra[k].second) && std::isnan(y.extra[k].second)) continue;
      EXPECT_EQ(x.extra[k].second, y.extra[k].second) << x.extra[k].first;
    }
    differs = differs || x.value_loss != z.value_loss || x.train_return != z.train_return;
  }
  EXPECT_TRUE(differs) << "another seed gives other metrics";
}

EnvConfig seeded(uint32_t s) { return default_env_config("gridworld", s); }

}  // namespace

TEST(LearnerDeterminism, SameSeedSameMetrics) {
  expect_deterministic(
      [](uint32_t s) { return std::make_unique<PpoLearner>(Backend::cpu, seeded(s), 16, PpoConfig{}); });
  expect_deterministic(
      [](uint32_t s) { return std::make_unique<Rl2Learner>(Backend::cpu, seeded(s), 16, PpoConfig{}); });
  for (bool varibad : {false, true}) {
    BeliefConfig bc = varibad ? BeliefConfig::varibad() : BeliefConfig::dynamite();
    bc.batch_episodes = 8;  // belief steps from the first update
    expect_deterministic(
        [&](uint32_t s) { return std::make_unique<BeliefLearner>(Backend::cpu, seeded(s), 16, PpoConfig{}, bc); });
  }
}

// Every learner on every env, built from the env's shipped config as the command line builds it (small: 8 envs,
// 40-step episodes, so the belief learners' and ContraBAR's replays fill and their representation steps run within
// the four iterations): finite losses, returns and belief / CPC terms; identical metrics from the same seed, other ones
// from another; a finite evaluation.
TEST(EveryLearnerEveryEnv, FewIterationsFiniteAndDeterministic) {
  for (const std::string& env : Config::builtin_envs())
    for (const std::string algo : {"ppo", "oracle", "rl2", "dynamite", "varibad", "contrabar"}) {
      SCOPED_TRACE(algo + " on " + env);
      auto make = [&](uint32_t seed) {
        Config c = Config::builtin(env);
        const std::vector<std::pair<std::string, std::string>> sets = {{"run.algo", algo},
                                                                       {"run.envs", "8"},
                                                                       {"run.seed", std::to_string(seed)},
                                                                       {"env.horizon", "40"},
                                                                       {"train.rollout_steps", "20"},
                                                                       {"train.hidden", "32"},
                                                                       {"belief.hidden", "32"},
                                                                       {"belief.trunk", "32"},
                                                                       {"belief.batch_episodes", "4"},
                                                                       {"belief.elbo_samples", "10"},
                                                                       {"belief.decode_samples", "10"},
                                                                       {"rl2.hidden", "32"},
                                                                       {"contrabar.hidden", "16"},
                                                                       {"contrabar.batch_episodes", "4"},
                                                                       {"contrabar.updates", "2"}};
        for (const auto& [k, v] : sets) c.set_from_string(k, v, "test");
        c.validate();
        return make_learner(c, Backend::cpu);
      };
      auto a = make(3u), b = make(3u), c = make(4u);
      bool differs = false, finished = false, belief_ran = false;
      for (int it = 0; it < 4; ++it) {
        const IterationStats x = a->iterate(), y = b->iterate(), z = c->iterate();
        for (double v : {x.policy_loss, x.value_loss, x.entropy, x.grad_norm}) EXPECT_TRUE(std::isfinite(v)) << it;
        EXPECT_EQ(x.policy_loss, y.policy_loss) << it;
        EXPECT_EQ(x.value_loss, y.value_loss) << it;
        EXPECT_EQ(x.grad_norm, y.grad_norm) << it;
        if (x.episodes > 0) {
          finished = true;
          EXPECT_TRUE(std::isfinite(x.train_return)) << it;
          EXPECT_EQ(x.train_return, y.train_return) << it;
        }
        const std::string term = algo == "contrabar" ? "cpc_loss" : "belief_loss";
        const double bl = x.metric(term);
        if (!std::isnan(bl)) {
          belief_ran = true;
          EXPECT_TRUE(std::isfinite(bl)) << it;
          EXPECT_EQ(bl, y.metric(term)) << it;
        }
        differs = differs || x.value_loss != z.value_loss || x.policy_loss != z.policy_loss;
      }
      EXPECT_TRUE(finished) << "episodes of 40 steps finish within 80";
      EXPECT_EQ(belief_ran, algo == "dynamite" || algo == "varibad" || algo == "contrabar");
      EXPECT_TRUE(differs) << "another seed gives other metrics";
      const EvalStats ev = a->evaluate(4, 1, 5);
      EXPECT_EQ(ev.episodes, 4);
      EXPECT_TRUE(std::isfinite(ev.mean_return));
    }
}
