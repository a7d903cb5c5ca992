// The belief model's losses (SPEC §3): finite-difference gradient checks in double of the whole belief loss and
// of each term (masked reconstruction, KL chain with the learned prior, consistency hinge, termination BCE), the
// session masks against VariBAD's full-trajectory ELBO, and online (rollout) vs offline (training) beliefs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "algo/belief_model.h"
#include "kernels/buffer.h"
#include "nn/params.h"
#include "tests/belief_episodes.h"
#include "tests/gradcheck.h"

using namespace dyn;

namespace {

// The model, its parameters and a batch on the CPU in double, with the loss as a function of the parameters.
struct BeliefFixture {
  ParamLayout layout;
  BeliefModel<double> model;
  ParamBlob<double> params;
  Buffer<double> obs, rew;
  Buffer<int32_t> act, sid;
  Buffer<uint8_t> send;
  EpisodeBatchView<double> view;
  HostEpisodes host;
  BeliefLossWorkspace<double> ws;

  BeliefFixture(const HostEpisodes& e, bool conditioning, uint32_t seed = 3) : host(e) {
    BeliefShape shape;
    shape.conditioning = conditioning;
    shape.trunk = shape.hidden = 16;  // small, so finite differences stay cheap
    model = BeliefModel<double>(Backend::cpu, shape, layout);
    params = ParamBlob<double>(Backend::cpu, layout, seed);
    randomize_biases(seed);
    obs = Buffer<double>::copy_of(Backend::cpu, e.obs);
    rew = Buffer<double>::copy_of(Backend::cpu, e.rew);
    act = Buffer<int32_t>::copy_of(Backend::cpu, e.act);
    sid = Buffer<int32_t>::copy_of(Backend::cpu, e.sid);
    send = Buffer<uint8_t>::copy_of(Backend::cpu, e.send);
    view = {e.steps, e.batch, obs.data(), act.data(), rew.data(), sid.data(), send.data()};
    const int64_t R = int64_t(e.steps + 1) * e.batch;
    ws.eps = Buffer<double>(Backend::cpu, size_t(R) * shape.latent);
    draw_belief_noise(Backend::cpu, 11u, 0u, R * shape.latent, ws.eps.data());
    ground_truth_conditioning(model, params.value.data(), view, ws);  // fixed: the conditioning input is data
  }
  // zero-initialised biases would hide bias-gradient errors behind ReLU symmetries
  void randomize_biases(uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> n(0, 0.1);
    std::vector<double> v = params.value.to_host();
    for (const ParamView& pv : layout.views())
      if (pv.init == Init::zeros)
        for (size_t i = 0; i < pv.size; ++i) v[pv.offset + i] = n(rng);
    params.value.from_host(v);
  }
  BeliefLossStats eval(const BeliefLossConfig& cfg) {
    const DecodePlan plan = plan_decodes(host.sid, host.steps, host.batch, cfg.session_recon);
    params.grad.zero();
    return belief_loss(model, params.value.data(), params.grad.data(), view, plan, cfg, ws.cond.data(), ws);
  }
  // Largest relative error of the analytic gradient over the parameter views, on a sample of coordinates from
  // each (the worst view is named on failure).
  double gradcheck(const BeliefLossConfig& cfg, int per_view = 6) {
    double worst = 0;
    for (const ParamView& pv : layout.views()) {
      const double e = gradcheck_view(cfg, pv, per_view);
      if (e > 1e-6) ADD_FAILURE() << pv.name << ": relative error " << e;
      worst = std::fmax(worst, e);
    }
    return worst;
  }
  double gradcheck_view(const BeliefLossConfig& cfg, const ParamView& pv, int per_view) {
    eval(cfg);
    const std::vector<double> g = params.grad.to_host();
    return gradcheck_block(
        params.value.data(), g, pv.offset, pv.size, per_view, [&] { return eval(cfg).total; },
        3e-5);  // the loss is O(100): a wider step keeps rounding out of the quotient (1e-5: ~2e-6 on GRU weights)
  }
};

BeliefLossConfig only(bool recon_masked, double kl, double beta, double term) {
  BeliefLossConfig c;
  c.session_recon = recon_masked;
  c.kl_weight = kl;
  c.beta = beta;
  c.termination = term;
  return c;
}

}  // namespace

TEST(BeliefLoss, WholeLossGradientMatchesFiniteDifferences) {
  BeliefFixture f(random_episodes(9, 3, 3, 1), true);
  BeliefLossConfig cfg;  // DynaMITE defaults: every term on
  cfg.kl_weight = 0.3;   // large enough that the KL's gradient is not lost under the reconstruction's
  EXPECT_LT(f.gradcheck(cfg), 1e-6);
}

TEST(BeliefLoss, EachTermGradientMatchesFiniteDifferences) {
  BeliefFixture f(random_episodes(9, 3, 3, 2), true);
  EXPECT_LT(f.gradcheck(only(true, 0, 0, 0)), 1e-6) << "session-masked reconstruction";
  EXPECT_LT(f.gradcheck(only(false, 0, 0, 0)), 1e-6) << "full-trajectory reconstruction";
  // KL chain with the learned prior: weight it far above the reconstruction
  EXPECT_LT(f.gradcheck(only(true, 50.0, 0, 0)), 1e-6) << "KL chain, learned prior at session starts";
  BeliefLossConfig no_cond = only(true, 50.0, 0, 0);
  no_cond.conditioning = false;
  EXPECT_LT(f.gradcheck(no_cond), 1e-6) << "KL chain, N(0, I) at session starts";
  EXPECT_LT(f.gradcheck(only(true, 0, 200.0, 0)), 1e-6) << "consistency hinge";
  EXPECT_LT(f.gradcheck(only(true, 0, 0, 200.0)), 1e-6) << "termination BCE";
}

TEST(BeliefLoss, VaribadConfigGradientMatchesFiniteDifferences) {
  BeliefFixture f(random_episodes(9, 3, 3, 3), false);
  BeliefLossConfig cfg = BeliefLossConfig::varibad();
  cfg.kl_weight = 0.3;
  EXPECT_LT(f.gradcheck(cfg), 1e-6);
}

// The row function alone, on hand-made posteriors: every branch of the KL chain, and the hinge's corner.
TEST(BeliefTerms, KlChainPicksThePriorBySession) {
  const int d = 1, B = 1, steps = 3, qw = 3;
  // latents 0..3; transitions 0..2 in sessions 0, 0, 1 → latent sessions 0, 0, 0, 1 (latent 3 starts session 1)
  std::vector<int32_t> sid = {0, 0, 1};
  std::vector<uint8_t> send = {0, 1, 1};
  std::vector<double> q = {0.5, 0.1, 0, 0.4, -0.2, 0, 0.3, 0.0, 0, -1.0, 0.3, 0};  // [μ, log σ², logit]
  std::vector<double> prior = {9, 9, 9, 9, 0.7, -0.4, 9, 9};  // only row 2 (session 0's final) is a prior used
  std::vector<double> dq(q.size()), dp(prior.size()), sums(3);
  BeliefTermWeights<double> w;
  w.kl = 1.0;
  belief_terms_row(0, B, steps, d, q.data(), prior.data(), sid.data(), send.data(), nullptr, w, dq.data(), dp.data(),
                   sums.data());
  auto kl = [](double m1, double l1, double m2, double l2) {
    return 0.5 * (l2 - l1 + (std::exp(l1) + (m1 - m2) * (m1 - m2)) / std::exp(l2) - 1);
  };
  const double expected = 0.5 * (std::exp(0.1) + 0.25 - 1 - 0.1)  // t = 0 against N(0, 1)
                          + kl(0.4, -0.2, 0.5, 0.1)               // t = 1 against q_0
                          + kl(0.3, 0.0, 0.4, -0.2)               // t = 2 against q_1
                          + kl(-1.0, 0.3, 0.7, -0.4);             // t = 3 starts session 1: p_θ(·|q_2)
  EXPECT_NEAR(sums[0], expected, 1e-12);
  EXPECT_NE(dp[4], 0.0);  // the learned prior row of latent 2 got its gradient
  EXPECT_EQ(dp[0], 0.0);
  (void)qw;
}

TEST(BeliefTerms, ConsistencyHingeCornerAndSign) {
  const int d = 1, B = 1, steps = 3;
  std::vector<int32_t> sid = {0, 0, 0};
  std::vector<uint8_t> send = {0, 0, 1};
  std::vector<double> prior(8, 0.0), sums(3);
  BeliefTermWeights<double> w;
  w.kl = 0;
  w.consistency = 1.0;
  // q_1 == q_0: the hinge sits exactly at its corner (difference 0) and must take the zero branch
  std::vector<double> q = {0.2, 0.0, 0, 0.2, 0.0, 0, 0.1, -0.1, 0, 0.0, -0.5, 0};
  std::vector<double> dq(q.size(), 0.0);
  belief_terms_row(0, B, steps, d, q.data(), prior.data(), sid.data(), send.data(), nullptr, w, dq.data(), prior.data(),
                   sums.data());
  // pairs (0,1): corner → 0; (1,2): q_2 is closer to q_end = q_3 than q_1 → negative → 0; (2,3): KL(q_3‖q_3) = 0
  // minus a positive KL → 0. No pair moves away from the final belief: no loss, no gradient.
  EXPECT_EQ(sums[1], 0.0);
  for (double g : dq) EXPECT_EQ(g, 0.0);
  // moving q_2 away from the final belief makes pair (1, 2) positive
  q[6] = 2.0;
  std::fill(dq.begin(), dq.end(), 0.0);
  belief_terms_row(0, B, steps, d, q.data(), prior.data(), sid.data(), send.data(), nullptr, w, dq.data(), prior.data(),
                   sums.data());
  EXPECT_GT(sums[1], 0.0);
  EXPECT_GT(dq[6], 0.0);  // pushing μ_2 back toward μ_end lowers the loss
  EXPECT_NE(dq[9], 0.0);  // the final belief is not detached
}

TEST(BeliefLoss, NoSessionReconEqualsVaribadReconstruction) {
  BeliefFixture f(random_episodes(10, 4, 3, 4), false);
  BeliefLossConfig full = only(false, 0.01, 0, 0);
  const BeliefLossStats dyn_full = f.eval(full), vb = f.eval(BeliefLossConfig::varibad());
  EXPECT_EQ(dyn_full.pairs, vb.pairs);
  EXPECT_EQ(dyn_full.pairs, int64_t(11) * 10 * 4);  // every (latent, transition) pair: (T+1)·T·B
  EXPECT_DOUBLE_EQ(dyn_full.recon, vb.recon);
  const BeliefLossStats masked = f.eval(only(true, 0.01, 0, 0));
  EXPECT_LT(masked.pairs, vb.pairs);  // several sessions: masking drops pairs
}

TEST(BeliefLoss, OneSessionDynamiteEqualsVaribad) {
  BeliefFixture f(random_episodes(10, 4, 1, 5), true);  // max one session per episode
  BeliefLossConfig dyn = only(true, 0.01, 0, 0);        // consistency and BCE off
  const BeliefLossStats a = f.eval(dyn);
  const std::vector<double> ga = f.params.grad.to_host();
  BeliefLossConfig vb = BeliefLossConfig::varibad();
  const BeliefLossStats b = f.eval(vb);
  const std::vector<double> gb = f.params.grad.to_host();
  EXPECT_EQ(a.pairs, b.pairs);
  EXPECT_NEAR(a.total, b.total, 1e-12 * std::fabs(b.total));
  EXPECT_LT(rel_l2(ga, gb), 1e-12);
}

// The learner's path builds the conditioning inputs inside the encoder's pass (encode_sessions, one time step at a
// time); held fixed from ground_truth_conditioning, the batched encoder gives the same loss and gradient.
TEST(BeliefLoss, InPassConditioningEqualsFixedConditioning) {
  BeliefFixture f(random_episodes(10, 4, 3, 7), true);
  int conditioned = 0;  // the episodes have several sessions, so the inputs are not all zero
  for (size_t i = 0; i < f.ws.cond.size(); ++i) conditioned += f.ws.cond.data()[i] != 0.0;
  ASSERT_GT(conditioned, 0);
  BeliefLossConfig cfg;
  cfg.kl_weight = 0.3;
  const DecodePlan plan = plan_decodes(f.host.sid, f.host.steps, f.host.batch, cfg.session_recon);
  const double* p = f.params.value.data();
  f.params.grad.zero();
  const BeliefLossStats fixed =
      belief_loss(f.model, p, f.params.grad.data(), f.view, plan, cfg, f.ws.cond.data(), f.ws);
  const std::vector<double> g_fixed = f.params.grad.to_host();
  f.params.grad.zero();
  const BeliefLossStats in_pass =
      belief_loss<double>(f.model, p, f.params.grad.data(), f.view, plan, cfg, nullptr, f.ws);
  EXPECT_NEAR(in_pass.total, fixed.total, 1e-12 * std::fabs(fixed.total));
  EXPECT_NEAR(in_pass.kl, fixed.kl, 1e-12 * std::fabs(fixed.kl));
  EXPECT_LT(rel_l2(f.params.grad.to_host(), g_fixed), 1e-12);
}

// The rollout's online step (one latent at a time, carrying h and the conditioning belief) and the training pass
// over the whole stored episode give the same beliefs.
TEST(BeliefModel, OnlineAndOfflineBeliefsAgree) {
  const HostEpisodes e = random_episodes(12, 5, 4, 6);
  ParamLayout layout;
  BeliefShape shape;
  BeliefModel<float> model(Backend::cpu, shape, layout);
  ParamBlob<float> params(Backend::cpu, layout, 9);
  const int B = e.batch, T1 = e.steps + 1, d = shape.latent, qw = shape.head_out();
  // online: the rollout's bookkeeping, written out with the public pieces
  std::vector<float> online(size_t(T1) * B * qw);
  {
    Buffer<float> h(Backend::cpu, size_t(B) * shape.hidden), cond(Backend::cpu, size_t(B) * 2 * d),
        obs(Backend::cpu, size_t(B) * 6), prev_r(Backend::cpu, B);
    Buffer<int32_t> prev_a(Backend::cpu, B);
    Buffer<uint8_t> start(Backend::cpu, B), close(Backend::cpu, B);
    h.zero();
    cond.zero();
    EncoderWorkspace<float> ws;
    for (int t = 0; t < T1; ++t) {
      for (int b = 0; b < B; ++b) {
        for (int k = 0; k < 6; ++k) obs.data()[b * 6 + k] = float(e.obs[(size_t(t) * B + b) * 6 + k]);
        prev_a.data()[b] = t == 0 ? 0 : e.act[size_t(t - 1) * B + b];
        prev_r.data()[b] = t == 0 ? 0.0f : float(e.rew[size_t(t - 1) * B + b]);
        start.data()[b] = t == 0;
        close.data()[b] = t >= 1 && e.send[size_t(t - 1) * B + b];
      }
      model.encode(params.value.data(), obs.data(), prev_a.data(), static_cast<const float*>(nullptr), prev_r.data(),
                   start.data(), cond.data(), h.data(), 1, B, ws);
      std::copy(ws.gru.h.data(), ws.gru.h.data() + size_t(B) * shape.hidden, h.data());
      const float* q = BeliefModel<float>::q(ws);
      std::copy(q, q + size_t(B) * qw, online.begin() + size_t(t) * B * qw);
      carry_final_belief(Backend::cpu, q, close.data(), B, d, cond.data());
    }
  }
  // offline: ground-truth conditioning inputs, then one encoder pass over [T+1, B]
  std::vector<float> obs_f(e.obs.begin(), e.obs.end()), rew_f(e.rew.begin(), e.rew.end());
  Buffer<float> obs = Buffer<float>::copy_of(Backend::cpu, obs_f), rew = Buffer<float>::copy_of(Backend::cpu, rew_f);
  Buffer<int32_t> act = Buffer<int32_t>::copy_of(Backend::cpu, e.act),
                  sid = Buffer<int32_t>::copy_of(Backend::cpu, e.sid);
  Buffer<uint8_t> send = Buffer<uint8_t>::copy_of(Backend::cpu, e.send);
  const EpisodeBatchView<float> view{e.steps, B, obs.data(), act.data(), rew.data(), sid.data(), send.data()};
  BeliefLossWorkspace<float> ws;
  ground_truth_conditioning(model, params.value.data(), view, ws);
  model.encode(params.value.data(), obs.data(), ws.prev_a.data(), static_cast<const float*>(nullptr), ws.prev_r.data(),
               ws.start.data(), ws.cond.data(), static_cast<const float*>(nullptr), T1, B, ws.enc);
  const float* q = BeliefModel<float>::q(ws.enc);
  const std::vector<float> offline(q, q + size_t(T1) * B * qw);
  double max_diff = 0;
  for (size_t i = 0; i < online.size(); ++i) max_diff = std::fmax(max_diff, std::fabs(online[i] - offline[i]));
  EXPECT_LT(max_diff, 1e-5);
  // and the conditioning input actually changed the beliefs after the first session end
  int cond_rows = 0;
  for (size_t i = 0; i < ws.cond.size(); ++i) cond_rows += ws.cond.data()[i] != 0.0f;
  EXPECT_GT(cond_rows, 0);
}
