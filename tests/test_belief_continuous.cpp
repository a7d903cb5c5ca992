// The belief model at the continuous envs' settings (SPEC §3): action vectors instead of one-hots, the state decoder
// (halfcheetah_wind_vel), and VariBAD's ELBO / decode subsampling. Finite-difference gradient checks in double of the
// whole loss with both decoders and a subsampled plan; the reconstruction terms against a direct sum over every
// (latent, transition) pair of the session (subsampling off); the subsampled plan's counts, ranges and
// reproducibility; and, on a physics env, the rollout's online beliefs against the offline pass over the episodes
// the replay stored.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "algo/belief_learner.h"
#include "algo/belief_model.h"
#include "kernels/buffer.h"
#include "nn/params.h"
#include "tests/belief_episodes.h"
#include "tests/gradcheck.h"

using namespace dyn;

namespace {

constexpr int kObs = 5, kAct = 3;

// A continuous-action batch on the CPU in double: the model (state decoder on or off), its parameters, the episodes
// (observations and actions from a normal, random sessions) and the loss as a function of the parameters.
struct ContinuousFixture {
  ParamLayout layout;
  BeliefModel<double> model;
  ParamBlob<double> params;
  HostEpisodes host;
  std::vector<double> act_value;  // [T, B, A]
  Buffer<double> obs, rew, actv;
  Buffer<int32_t> sid;
  Buffer<uint8_t> send;
  EpisodeBatchView<double> view;
  BeliefLossWorkspace<double> ws;

  ContinuousFixture(const HostEpisodes& e, bool state_decoder, uint32_t seed = 3) : host(e) {
    BeliefShape shape;
    shape.obs = kObs;
    shape.actions = kAct;
    shape.discrete_actions = false;
    shape.state_decoder = state_decoder;
    shape.trunk = shape.hidden = 16;
    shape.embed = 6;
    shape.latent = 4;
    model = BeliefModel<double>(Backend::cpu, shape, layout);
    params = ParamBlob<double>(Backend::cpu, layout, seed);
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal;
    std::vector<double> v = params.value.to_host();
    for (const ParamView& pv : layout.views())  // non-zero biases: zero ones would hide bias-gradient errors
      if (pv.init == Init::zeros)
        for (size_t i = 0; i < pv.size; ++i) v[pv.offset + i] = 0.1 * normal(rng);
    params.value.from_host(v);
    std::vector<double> o(size_t(e.steps + 1) * e.batch * kObs);
    for (double& x : o) x = normal(rng);
    act_value.resize(size_t(e.steps) * e.batch * kAct);
    for (double& x : act_value) x = normal(rng);
    obs = Buffer<double>::copy_of(Backend::cpu, o);
    rew = Buffer<double>::copy_of(Backend::cpu, e.rew);
    actv = Buffer<double>::copy_of(Backend::cpu, act_value);
    sid = Buffer<int32_t>::copy_of(Backend::cpu, e.sid);
    send = Buffer<uint8_t>::copy_of(Backend::cpu, e.send);
    view.steps = e.steps;
    view.batch = e.batch;
    view.obs = obs.data();
    view.rew = rew.data();
    view.sid = sid.data();
    view.send = send.data();
    view.act_value = actv.data();
    const int64_t R = int64_t(e.steps + 1) * e.batch;
    ws.eps = Buffer<double>(Backend::cpu, size_t(R) * shape.latent);
    draw_belief_noise(Backend::cpu, 11u, 0u, R * shape.latent, ws.eps.data());
    ground_truth_conditioning(model, params.value.data(), view, ws);
  }
  const BeliefShape& shape() const { return model.shape(); }
  DecodePlan plan(const BeliefLossConfig& cfg) const {
    return plan_decodes(host.sid, host.steps, host.batch, cfg.session_recon, cfg.elbo_samples, cfg.decode_samples, 21,
                        5);
  }
  BeliefLossStats eval(const BeliefLossConfig& cfg) {
    params.grad.zero();
    return belief_loss(model, params.value.data(), params.grad.data(), view, plan(cfg), cfg, ws.cond.data(), ws);
  }
  double gradcheck(const BeliefLossConfig& cfg, int per_view = 6) {
    double worst = 0;
    eval(cfg);
    const std::vector<double> g = params.grad.to_host();
    for (const ParamView& pv : layout.views()) {
      const double e = gradcheck_block(
          params.value.data(), g, pv.offset, pv.size, per_view, [&] { return eval(cfg).total; }, 3e-5);
      if (e > 1e-6) ADD_FAILURE() << pv.name << ": relative error " << e;
      worst = std::fmax(worst, e);
    }
    return worst;
  }
  // One decoder's outputs on rows built by `row(k, x)` (k < rows), in double on the CPU.
  template <class Row>
  std::vector<double> decode(const Mlp& net, int in_width, int rows, Row row) {
    std::vector<double> x(size_t(rows) * in_width);
    for (int k = 0; k < rows; ++k) row(k, x.data() + size_t(k) * in_width);
    Buffer<double> xb = Buffer<double>::copy_of(Backend::cpu, x);
    MlpWorkspace<double> mws;
    net.forward(Backend::cpu, params.value.data(), xb.data(), rows, mws);
    return mws.act.back().to_host();
  }
};

}  // namespace

TEST(BeliefLossContinuous, GradientWithStateDecoderMatchesFiniteDifferences) {
  ContinuousFixture f(random_episodes(9, 3, 3, 7), true);
  BeliefLossConfig cfg;  // DynaMITE: every term
  cfg.kl_weight = 0.3;
  cfg.state_weight = 0.7;
  EXPECT_LT(f.gradcheck(cfg), 1e-6);
  // the state decoder's parameters get a gradient only through its term
  const std::vector<double> g = f.params.grad.to_host();
  double sdec = 0;
  for (const ParamView& pv : f.layout.views())
    if (pv.name.rfind("belief.sdec", 0) == 0)
      for (size_t i = 0; i < pv.size; ++i) sdec += g[pv.offset + i] * g[pv.offset + i];
  EXPECT_GT(sdec, 0.0);
}

TEST(BeliefLossContinuous, SubsampledGradientMatchesFiniteDifferences) {
  ContinuousFixture f(random_episodes(12, 3, 3, 8), true);
  BeliefLossConfig cfg;
  cfg.kl_weight = 0.3;
  cfg.elbo_samples = 4;  // of 13 latents
  cfg.decode_samples = 3;
  EXPECT_LT(f.gradcheck(cfg), 1e-6);
  BeliefLossConfig vb = BeliefLossConfig::varibad();  // whole-trajectory ranges, subsampled
  vb.kl_weight = 0.3;
  vb.elbo_samples = 5;
  vb.decode_samples = 4;
  EXPECT_LT(f.gradcheck(vb), 1e-6);
}

TEST(BeliefLossContinuous, SubsamplingOffReconstructsEveryPairOfTheSession) {
  ContinuousFixture f(random_episodes(10, 4, 3, 9), true);
  for (bool session_recon : {true, false}) {
    BeliefLossConfig cfg;
    cfg.session_recon = session_recon;
    const BeliefLossStats st = f.eval(cfg);
    // the direct sum: every latent t against every transition j of its session (or of the episode), with the
    // sample z_t the loss drew
    const HostEpisodes& e = f.host;
    const int T = e.steps, B = e.batch, d = f.shape().latent;
    const std::vector<double> z = f.ws.z.to_host(), obs = f.obs.to_host();
    std::vector<std::array<int, 3>> pairs;  // (t, j, b)
    for (int b = 0; b < B; ++b)
      for (int t = 0; t <= T; ++t) {
        const int own = e.sid[size_t(t == 0 ? 0 : t - 1) * B + b];
        for (int j = 0; j < T; ++j)
          if (!session_recon || e.sid[size_t(j) * B + b] == own) pairs.push_back({t, j, b});
      }
    ASSERT_EQ(int64_t(pairs.size()), st.pairs);
    const int P = int(pairs.size());
    auto s_of = [&](int t, int b) { return obs.data() + (size_t(t) * B + b) * kObs; };
    auto a_of = [&](int j, int b) { return f.act_value.data() + (size_t(j) * B + b) * kAct; };
    const std::vector<double> rhat = f.decode(f.model.decoder, d + 2 * kObs + kAct, P, [&](int k, double* x) {
      const auto [t, j, b] = pairs[size_t(k)];
      std::copy_n(z.data() + (size_t(t) * B + b) * d, d, x);
      std::copy_n(s_of(j, b), kObs, x + d);
      std::copy_n(a_of(j, b), kAct, x + d + kObs);
      std::copy_n(s_of(j + 1, b), kObs, x + d + kObs + kAct);
    });
    const std::vector<double> shat = f.decode(f.model.state_decoder, d + kObs + kAct, P, [&](int k, double* x) {
      const auto [t, j, b] = pairs[size_t(k)];
      std::copy_n(z.data() + (size_t(t) * B + b) * d, d, x);
      std::copy_n(s_of(j, b), kObs, x + d);
      std::copy_n(a_of(j, b), kAct, x + d + kObs);
    });
    double recon = 0, state = 0;
    for (int k = 0; k < P; ++k) {
      const auto [t, j, b] = pairs[size_t(k)];
      const double r = e.rew[size_t(j) * B + b];
      recon += (rhat[k] - r) * (rhat[k] - r);
      for (int c = 0; c < kObs; ++c) {
        const double diff = shat[size_t(k) * kObs + c] - s_of(j + 1, b)[c];
        state += diff * diff;
      }
    }
    EXPECT_NEAR(st.recon, recon / B, 1e-10 * (1 + recon)) << "session_recon " << session_recon;
    EXPECT_NEAR(st.state_recon, state / B, 1e-10 * (1 + state)) << "session_recon " << session_recon;
    // as many ELBO indices as latents: the same loss as no subsampling
    BeliefLossConfig all = cfg;
    all.elbo_samples = T + 1;
    const BeliefLossStats st_all = f.eval(all);
    EXPECT_EQ(st_all.total, st.total);
    EXPECT_EQ(st_all.pairs, st.pairs);
  }
}

TEST(DecodePlan, SubsampledCountsRangesAndReproducibility) {
  const HostEpisodes e = random_episodes(40, 5, 4, 10);
  const int T = e.steps, B = e.batch, E = 6, D = 7;
  const DecodePlan p = plan_decodes(e.sid, T, B, true, E, D, 3, 1);
  for (int b = 0; b < B; ++b) {
    int elbo = 0;
    for (int t = 0; t <= T; ++t) {
      const size_t r = size_t(t) * B + b;
      const int count = p.offset[r + 1] - p.offset[r];
      if (!p.elbo[r]) {
        EXPECT_EQ(count, 0) << "only ELBO indices decode";
        continue;
      }
      ++elbo;
      const int own = e.sid[size_t(t == 0 ? 0 : t - 1) * B + b];
      int session_len = 0;
      for (int j = 0; j < T; ++j) session_len += e.sid[size_t(j) * B + b] == own;
      EXPECT_EQ(count, D < session_len ? D : session_len);
      for (int q = p.offset[r]; q < p.offset[r + 1]; ++q) {
        const int tr = p.pair_tr[size_t(q)];
        EXPECT_EQ(tr % B, b);
        EXPECT_EQ(e.sid[size_t(tr)], own) << "a decode stays in the latent's session";
        if (q > p.offset[r]) {
          EXPECT_LE(p.pair_tr[size_t(q - 1)], tr) << "in increasing j";
        }
      }
    }
    EXPECT_EQ(elbo, E) << "episode " << b;
  }
  // the transpose lists every pair once
  std::vector<int> seen(size_t(p.pairs), 0);
  for (int32_t q : p.tr_pair) ++seen[size_t(q)];
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), p.pairs);
  // same (seed, step): the same plan; another step: another
  const DecodePlan again = plan_decodes(e.sid, T, B, true, E, D, 3, 1),
                   other = plan_decodes(e.sid, T, B, true, E, D, 3, 2);
  EXPECT_EQ(again.pair_tr, p.pair_tr);
  EXPECT_EQ(again.elbo, p.elbo);
  EXPECT_NE(other.pair_tr, p.pair_tr);
}

// On halfcheetah_vel with 40-step episodes (one collect per episode), the beliefs the rollout computed online equal
// the offline encoder pass over the episodes the replay stored (continuous actions, the physics env's landing
// observations, ground-truth conditioning). The encoder's observation normalisation is off here: its statistics move
// during the collect, so the two passes would see differently normalised inputs by design.
TEST(BeliefReplay, PhysicsEpisodesReproduceTheRolloutsBeliefs) {
  EnvConfig env = default_env_config("halfcheetah_vel", 5);
  env.session.horizon = 40;
  BeliefConfig bc = BeliefConfig::dynamite();
  bc.shape.latent = 6;
  bc.shape.embed = 8;
  bc.shape.trunk = bc.shape.hidden = 32;
  bc.oracle_sessions = true;
  bc.normalize_obs = false;
  bc.updates_per_iteration = 0;
  bc.batch_episodes = 3;  // the gather below holds one batch
  PpoConfig ppo;
  ppo.rollout_steps = 40;
  const int64_t n = 3;
  const int T = ppo.rollout_steps, qw = 2 * bc.shape.latent + 1;
  BeliefLearner learner(Backend::cpu, env, n, ppo, bc);
  Buffer<float> trace(Backend::cpu, size_t(T) * n * qw);
  learner.trace_beliefs(trace.data());
  learner.iterate();
  const EpisodeBatchView<float> ep = learner.gather_episodes({0, 1, 2});
  ASSERT_NE(ep.act_value, nullptr);
  BeliefLossWorkspace<float> ws;
  ground_truth_conditioning(learner.model(), learner.belief_params(), ep, ws);
  learner.model().encode(learner.belief_params(), ep.obs, nullptr, ws.prev_a_value.data(), ws.prev_r.data(),
                         ws.start.data(), ws.cond.data(), static_cast<const float*>(nullptr), T + 1, int(n), ws.enc);
  const float* offline = BeliefModel<float>::q(ws.enc);
  double max_diff = 0, scale = 0;
  int sessions = 0;
  for (int t = 0; t < T; ++t)
    for (int64_t i = 0; i < n; ++i) {
      for (int k = 0; k < qw; ++k) {
        const float on = trace.data()[(t * n + i) * qw + k];
        max_diff = std::fmax(max_diff, std::fabs(on - offline[(t * n + i) * qw + k]));
        scale = std::fmax(scale, std::fabs(on));
      }
      sessions += ep.send[t * n + i];
    }
  EXPECT_LT(max_diff, 1e-5 * (1 + scale));
  EXPECT_GT(sessions, int(n)) << "several sessions per episode, so the conditioning input was exercised";
}
