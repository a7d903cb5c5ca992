// PPO on the gridworld: collect → advantages → update, all on the backend.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "algo/ppo.h"
#include "algo/ppo_common.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "kernels/reduce.h"
#include "nn/distributions_batch.h"

namespace dyn {

namespace {

ParamLayout& build(ParamLayout& layout, Mlp& actor, Mlp& critic, int hidden) {
  // baselines' initialisation: orthogonal √2 for hidden layers, 0.01 for the policy output, 1 for the value
  actor = Mlp({{kGridObsDim, hidden, hidden, kGridActions}}, layout, "actor", std::sqrt(2.0), 0.01);
  critic = Mlp({{kGridObsDim, hidden, hidden, 1}}, layout, "critic", std::sqrt(2.0), 1.0);
  return layout;
}

}  // namespace

GridPpo::GridPpo(Backend b, const GridParams& env, int64_t n_envs, const PpoConfig& cfg)
    : b_(b),
      env_(env),
      n_(n_envs),
      cfg_(cfg),
      params_(b, build(layout_, actor_, critic_, cfg.hidden), env.seed),
      adam_(b, layout_.total(), cfg.adam),
      obs_norm_(b, kGridObsDim),
      ret_norm_(b, 1),
      shuffle_rng_(env.seed),
      graphs_(b, cfg.cuda_graphs),
      step_dev_(b, 1),
      state_(b, n_),
      obs_(b, n_ * kGridObsDim),
      final_obs_(b, n_ * kGridObsDim),
      disc_ret_(b, n_),
      ep_ret_(b, n_) {
  const int64_t T = cfg.rollout_steps, TN = T * n_;
  const int64_t M = TN / cfg.minibatches;
  obs_buf_ = Buffer<float>(b, TN * kGridObsDim);
  act_buf_ = Buffer<int32_t>(b, TN);
  logp_buf_ = Buffer<float>(b, TN);
  val_buf_ = Buffer<float>(b, TN + n_);
  final_val_buf_ = Buffer<float>(b, TN);
  rew_buf_ = Buffer<float>(b, TN);
  disc_buf_ = Buffer<float>(b, TN);
  trunc_buf_ = Buffer<uint8_t>(b, TN);
  term_buf_ = Buffer<uint8_t>(b, TN);
  send_buf_ = Buffer<uint8_t>(b, TN);
  sid_buf_ = Buffer<int32_t>(b, TN);
  adv_buf_ = Buffer<float>(b, TN);
  ret_buf_ = Buffer<float>(b, TN);
  episode_sums_ = Buffer<double>(b, 2 * n_);
  perm_ = Buffer<int32_t>(b, int64_t(cfg.epochs) * TN);
  mb_obs_ = Buffer<float>(b, M * kGridObsDim);
  mb_old_logp_ = Buffer<float>(b, M);
  mb_adv_ = Buffer<float>(b, M);
  mb_ret_ = Buffer<float>(b, M);
  mb_old_v_ = Buffer<float>(b, M);
  mb_act_ = Buffer<int32_t>(b, M);
  mb_logp_ = Buffer<float>(b, M);
  mb_ent_ = Buffer<float>(b, M);
  mb_glogp_ = Buffer<float>(b, M);
  mb_gent_ = Buffer<float>(b, M);
  mb_dlogits_ = Buffer<float>(b, M * kGridActions);
  mb_dv_ = Buffer<float>(b, M);
  mb_terms_ = Buffer<float>(b, 5 * M);
  scalars_ = Buffer<float>(b, 8);
  term_acc_ = Buffer<double>(b, 5);
  disc_ret_.zero();
  ep_ret_.zero();
  final_val_buf_.zero();
  step_dev_.zero();
  gridworld_reset(b_, env_, state_.data(), obs_.data(), n_, 0);
}

// Actions, their log-probabilities and the values for normalised observations [n, 6].
void GridPpo::policy_step(HeadWorkspaces& ws, const float* obs_norm, int64_t n, bool deterministic, StepRef step,
                          int32_t* actions, float* logp, float* values) {
  actor_.forward(b_, params_.value.data(), obs_norm, int(n), ws.actor);
  const float* logits = ws.actor.act.back().data();
  categorical_act(b_, logits, deterministic, env_.seed, step, actions, n, kGridActions);
  if (logp) categorical_log_prob_entropy(b_, logits, actions, logp, static_cast<float*>(nullptr), n, kGridActions);
  if (values) {
    critic_.forward(b_, params_.value.data(), obs_norm, int(n), ws.critic);
    const float* v = ws.critic.act.back().data();
    parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) { values[i] = v[i]; });
  }
}

void GridPpo::collect(IterationStats& st) {
  DYN_NVTX_RANGE("ppo_collect");
  graphs_.run(step_ % uint32_t(env_.session.horizon), [&] { collect_steps(); });
  step_ += uint32_t(cfg_.rollout_steps);
  frames_ += int64_t(cfg_.rollout_steps) * n_;
  st.train_return = mean_episode_return(episode_sums_, n_, &st.episodes);
}

void GridPpo::collect_steps() {
  const int T = cfg_.rollout_steps;
  const int64_t n = n_;
  const float gamma = cfg_.gamma;
  const uint32_t step0 = step_;  // host mirror: only its phase within the horizon shapes what is queued
  episode_sums_.zero();
  for (int t = 0; t < T; ++t) {
    const StepRef step(step_dev_.data(), uint32_t(t));
    float* o = obs_buf_.data() + int64_t(t) * n * kGridObsDim;
    obs_norm_.update(obs_.data(), n);
    obs_norm_.normalize(obs_.data(), o, n);
    int32_t* a = act_buf_.data() + int64_t(t) * n;
    policy_step(roll_ws_, o, n, false, step, a, logp_buf_.data() + int64_t(t) * n, val_buf_.data() + int64_t(t) * n);
    float* r = rew_buf_.data() + int64_t(t) * n;
    uint8_t* trunc = trunc_buf_.data() + int64_t(t) * n;
    uint8_t* term = term_buf_.data() + int64_t(t) * n;
    const GridBatchOut out{
        obs_.data(),      r, send_buf_.data() + int64_t(t) * n, trunc, term, sid_buf_.data() + int64_t(t) * n,
        final_obs_.data()};
    gridworld_step(b_, env_, state_.data(), a, out, n, step);
    // time limit: bootstrap from V(final observation). All envs start together and share H, so truncations
    // happen exactly every H global steps.
    if ((step0 + uint32_t(t) + 1) % uint32_t(env_.session.horizon) == 0) {
      float* fo = final_obs_.data();
      obs_norm_.normalize(fo, fo, n);
      critic_.forward(b_, params_.value.data(), fo, int(n), roll_ws_.critic);
      const float* v = roll_ws_.critic.act.back().data();
      float* fv = final_val_buf_.data() + int64_t(t) * n;
      parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) { fv[i] = v[i]; });
    }
    // the reward scale's discounted return, and the raw episode returns for logging
    track_returns(b_, n, gamma, r, trunc, term, disc_ret_.data(), disc_buf_.data() + int64_t(t) * n, ep_ret_.data(),
                  episode_sums_.data());
  }
  uint32_t* counter = step_dev_.data();
  parallel_for(b_, 1, [=] DYN_LAMBDA(int64_t) { *counter += uint32_t(T); });
  // V(s_T) for the observation after the last step
  Buffer<float>& tmp = final_obs_;  // scratch for the normalised last observation
  obs_norm_.normalize(obs_.data(), tmp.data(), n);
  critic_.forward(b_, params_.value.data(), tmp.data(), int(n), roll_ws_.critic);
  const float* v = roll_ws_.critic.act.back().data();
  float* vT = val_buf_.data() + int64_t(T) * n;
  parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) { vT[i] = v[i]; });
  // scale rewards by the running std of the discounted return (SPEC §3), clipped to ±10
  ret_norm_.update(disc_buf_.data(), int64_t(T) * n);
  ret_norm_.scale(rew_buf_.data(), rew_buf_.data(), int64_t(T) * n);
}

void GridPpo::advantages() {
  DYN_NVTX_RANGE("ppo_advantages");
  graphs_.run(kGraphAdvantages, [&] {
    advantages_normalized(b_, cfg_.rollout_steps, n_, rew_buf_.data(), val_buf_.data(), term_buf_.data(),
                          trunc_buf_.data(), final_val_buf_.data(), cfg_.gamma, cfg_.gae_lambda, adv_buf_.data(),
                          ret_buf_.data(), scalars_.data());
  });
}

void GridPpo::update(IterationStats& st) {
  DYN_NVTX_RANGE("ppo_update");
  upload_shuffles(shuffle_rng_, cfg_.epochs, int64_t(cfg_.rollout_steps) * n_, perm_);  // over samples
  graphs_.run(kGraphUpdate, [&] { update_minibatches(); });
  read_update_stats(term_acc_, cfg_.epochs * cfg_.minibatches, adam_.last_grad_norm(), st);
}

void upload_shuffles(std::mt19937_64& rng, int epochs, int64_t n, Buffer<int32_t>& perm) {
  std::vector<int32_t> p(n), all;
  std::iota(p.begin(), p.end(), 0);
  for (int epoch = 0; epoch < epochs; ++epoch) {
    std::shuffle(p.begin(), p.end(), rng);
    all.insert(all.end(), p.begin(), p.end());
  }
  perm.from_host(all);
}

void read_update_stats(const Buffer<double>& term_acc, int updates, double grad_norm, IterationStats& st) {
  const std::vector<double> sums = term_acc.to_host();  // the one read of the update
  st.policy_loss = sums[0] / updates;
  st.value_loss = sums[1] / updates;
  st.entropy = sums[2] / updates;
  st.approx_kl = sums[3] / updates;
  st.clip_fraction = sums[4] / updates;
  st.grad_norm = grad_norm;
}

void GridPpo::update_minibatches() {
  const int64_t TN = int64_t(cfg_.rollout_steps) * n_;
  const int64_t M = TN / cfg_.minibatches;
  term_acc_.zero();
  for (int epoch = 0; epoch < cfg_.epochs; ++epoch) {
    for (int mb = 0; mb < cfg_.minibatches; ++mb) {
      // gather the minibatch
      const int32_t* idx = perm_.data() + epoch * TN + mb * M;
      const float *obs = obs_buf_.data(), *logp = logp_buf_.data(), *adv = adv_buf_.data(), *ret = ret_buf_.data(),
                  *val = val_buf_.data();
      const int32_t* act = act_buf_.data();
      float *m_obs = mb_obs_.data(), *m_logp = mb_old_logp_.data(), *m_adv = mb_adv_.data(), *m_ret = mb_ret_.data(),
            *m_v = mb_old_v_.data();
      int32_t* m_act = mb_act_.data();
      parallel_for(b_, M, [=] DYN_LAMBDA(int64_t i) {
        const int64_t j = idx[i];
        for (int k = 0; k < kGridObsDim; ++k) m_obs[i * kGridObsDim + k] = obs[j * kGridObsDim + k];
        m_act[i] = act[j];
        m_logp[i] = logp[j];
        m_adv[i] = adv[j];
        m_ret[i] = ret[j];
        m_v[i] = val[j];
      });
      // forward
      actor_.forward(b_, params_.value.data(), m_obs, int(M), upd_ws_.actor);
      critic_.forward(b_, params_.value.data(), m_obs, int(M), upd_ws_.critic);
      const float* logits = upd_ws_.actor.act.back().data();
      const float* v = upd_ws_.critic.act.back().data();
      categorical_log_prob_entropy(b_, logits, m_act, mb_logp_.data(), mb_ent_.data(), M, kGridActions);
      // per-sample loss terms and the loss' gradients w.r.t. log π, the entropy and v (means over M)
      float *g_logp = mb_glogp_.data(), *g_ent = mb_gent_.data(), *dv = mb_dv_.data(), *terms = mb_terms_.data();
      ppo_minibatch_terms(b_, M, mb_logp_.data(), m_logp, mb_ent_.data(), m_adv, v, m_v, m_ret, cfg_.clip, cfg_.vf_coef,
                          cfg_.entropy_coef, g_logp, g_ent, dv, terms);
      // backward into the shared gradient blob (actor and critic own disjoint views), then one Adam step
      categorical_backward(b_, logits, m_act, g_logp, g_ent, mb_dlogits_.data(), M, kGridActions);
      actor_.backward(b_, params_.value.data(), params_.grad.data(), m_obs, mb_dlogits_.data(),
                      static_cast<float*>(nullptr), upd_ws_.actor, false);
      critic_.backward(b_, params_.value.data(), params_.grad.data(), m_obs, dv, static_cast<float*>(nullptr),
                       upd_ws_.critic, false);
      adam_.step(params_.value.data(), params_.grad.data());
      accumulate_terms(b_, M, terms, scalars_.data() + 2, term_acc_.data());
    }
  }
}

IterationStats GridPpo::iterate() { return timed_iteration(*this); }

EvalStats GridPpo::evaluate(int64_t n, int episodes_per_env, uint32_t seed) {
  DYN_NVTX_RANGE("ppo_evaluate");
  GridParams p = env_;
  p.seed = seed;
  Buffer<GridState> state(b_, n);
  Buffer<float> obs(b_, n * kGridObsDim), norm(b_, n * kGridObsDim), reward(b_, n), ep(b_, n);
  Buffer<uint8_t> send(b_, n), trunc(b_, n), term(b_, n);
  Buffer<int32_t> sid(b_, n), act(b_, n);
  Buffer<double> sums(b_, 3 * n);
  ep.zero();
  sums.zero();
  HeadWorkspaces ws;
  gridworld_reset(b_, p, state.data(), obs.data(), n, 0);
  const GridBatchOut out{obs.data(), reward.data(), send.data(), trunc.data(), term.data(), sid.data(), nullptr};
  const int64_t steps = int64_t(episodes_per_env) * p.session.horizon;
  for (int64_t t = 0; t < steps; ++t) {
    obs_norm_.normalize(obs.data(), norm.data(), n);
    policy_step(ws, norm.data(), n, true, uint32_t(t), act.data(), nullptr, nullptr);
    gridworld_step(b_, p, state.data(), act.data(), out, n, uint32_t(t));
    track_eval_returns(b_, n, reward.data(), trunc.data(), ep.data(), sums.data());
  }
  return eval_stats(sums, n);
}

}  // namespace dyn
