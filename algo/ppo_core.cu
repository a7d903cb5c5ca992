// PpoCore: rollout storage, reward scaling, GAE and the minibatch update of a feed-forward PPO policy.
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "algo/ppo_common.h"
#include "algo/ppo_core.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "nn/distributions_batch.h"

namespace dyn {

namespace {

ParamLayout& build(ParamLayout& layout, Mlp& actor, Mlp& critic, int in, int actions, int hidden) {
  // baselines' initialisation: orthogonal √2 for hidden layers, 0.01 for the policy output, 1 for the value
  actor = Mlp({{in, hidden, hidden, actions}}, layout, "actor", std::sqrt(2.0), 0.01);
  critic = Mlp({{in, hidden, hidden, 1}}, layout, "critic", std::sqrt(2.0), 1.0);
  return layout;
}

}  // namespace

PpoCore::PpoCore(Backend b, int in_dim, int actions, int64_t n_envs, const PpoConfig& cfg, uint32_t seed)
    : b_((check_rollout_size(cfg.rollout_steps, n_envs), b)),
      in_(in_dim),
      actions_(actions),
      n_(n_envs),
      cfg_(cfg),
      params_(b, build(layout_, actor_, critic_, in_dim, actions, cfg.hidden), seed),
      adam_(b, layout_.total(), cfg.adam),
      ret_norm_(b, 1),
      seed_(seed),
      shuffler_(b, int64_t(cfg.rollout_steps) * n_envs),
      graphs_(b, cfg.cuda_graphs),
      draws_(b, 1),
      disc_ret_(b, n_envs),
      ep_ret_(b, n_envs),
      episode_sums_(b, 2 * n_envs) {
  const int64_t T = cfg.rollout_steps, TN = T * n_;
  const int64_t M = TN / cfg.minibatches;
  in_buf_ = Buffer<float>(b, TN * in_);
  act_buf_ = Buffer<int32_t>(b, TN);
  for (Buffer<float>* buf : {&logp_buf_, &final_val_buf_, &rew_buf_, &disc_buf_, &adv_buf_, &ret_buf_})
    *buf = Buffer<float>(b, TN);
  val_buf_ = Buffer<float>(b, TN + n_);
  trunc_buf_ = Buffer<uint8_t>(b, TN);
  term_buf_ = Buffer<uint8_t>(b, TN);
  perm_ = Buffer<int32_t>(b, int64_t(cfg.epochs) * TN);
  mb_in_ = Buffer<float>(b, M * in_);
  for (Buffer<float>* buf :
       {&mb_old_logp_, &mb_adv_, &mb_ret_, &mb_old_v_, &mb_logp_, &mb_ent_, &mb_glogp_, &mb_gent_, &mb_dv_})
    *buf = Buffer<float>(b, M);
  mb_act_ = Buffer<int32_t>(b, M);
  mb_dlogits_ = Buffer<float>(b, M * actions_);
  mb_terms_ = Buffer<float>(b, 5 * M);
  scalars_ = Buffer<float>(b, 8);
  term_acc_ = Buffer<double>(b, 5);
  disc_ret_.zero();
  ep_ret_.zero();
  final_val_buf_.zero();
  draws_.zero();
}

void PpoCore::act(HeadWorkspaces& ws, const float* in, int64_t n, bool deterministic, uint32_t seed, StepRef step,
                  int32_t* actions, float* logp, float* vals) {
  actor_.forward(b_, params_.value.data(), in, int(n), ws.actor);
  const float* logits = ws.actor.act.back().data();
  categorical_act(b_, logits, deterministic, seed, step, actions, n, actions_);
  if (logp) categorical_log_prob_entropy(b_, logits, actions, logp, static_cast<float*>(nullptr), n, actions_);
  if (vals) values(ws, in, n, vals);
}

void PpoCore::values(HeadWorkspaces& ws, const float* in, int64_t n, float* vals) {
  critic_.forward(b_, params_.value.data(), in, int(n), ws.critic);
  const float* v = ws.critic.act.back().data();
  parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) { vals[i] = v[i]; });
}

void PpoCore::begin_rollout() { episode_sums_.zero(); }

void PpoCore::track_step(int t) {
  track_returns(b_, n_, cfg_.gamma, reward(t), truncated(t), terminated(t), disc_ret_.data(),
                disc_buf_.data() + int64_t(t) * n_, ep_ret_.data(), episode_sums_.data());
}

void PpoCore::finish_rollout() {
  // scale rewards by the running std of the discounted return (SPEC §3), clipped to ±10
  const int64_t TN = int64_t(cfg_.rollout_steps) * n_;
  ret_norm_.update(disc_buf_.data(), TN);
  ret_norm_.scale(rew_buf_.data(), rew_buf_.data(), TN);
}

double PpoCore::rollout_return(int64_t* episodes) const { return mean_episode_return(episode_sums_, n_, episodes); }

void PpoCore::advantages() {
  DYN_NVTX_RANGE("ppo_advantages");
  graphs_.run(kGraphAdvantages, [&] {
    advantages_normalized(b_, cfg_.rollout_steps, n_, rew_buf_.data(), val_buf_.data(), term_buf_.data(),
                          trunc_buf_.data(), final_val_buf_.data(), cfg_.gamma, cfg_.gae_lambda, adv_buf_.data(),
                          ret_buf_.data(), scalars_.data());
  });
}

void PpoCore::update(IterationStats& st) {
  DYN_NVTX_RANGE("ppo_update");
  graphs_.run(kGraphUpdate, [&] {
    draw_shuffles(b_, shuffler_, seed_, cfg_.epochs, draws_.data(), perm_.data());  // over samples
    update_minibatches();
  });
  read_update_stats(term_acc_, cfg_.epochs * cfg_.minibatches, adam_.last_grad_norm(), st);
}

void PpoCore::update_minibatches() {
  const int64_t TN = int64_t(cfg_.rollout_steps) * n_;
  const int64_t M = TN / cfg_.minibatches;
  const int D = in_, A = actions_;
  term_acc_.zero();
  for (int epoch = 0; epoch < cfg_.epochs; ++epoch) {
    for (int mb = 0; mb < cfg_.minibatches; ++mb) {
      // gather the minibatch
      const int32_t* idx = perm_.data() + epoch * TN + mb * M;
      const float *in = in_buf_.data(), *logp = logp_buf_.data(), *adv = adv_buf_.data(), *ret = ret_buf_.data(),
                  *val = val_buf_.data();
      const int32_t* act = act_buf_.data();
      float *m_in = mb_in_.data(), *m_logp = mb_old_logp_.data(), *m_adv = mb_adv_.data(), *m_ret = mb_ret_.data(),
            *m_v = mb_old_v_.data();
      int32_t* m_act = mb_act_.data();
      parallel_for(b_, M, [=] DYN_LAMBDA(int64_t i) {
        const int64_t j = idx[i];
        for (int k = 0; k < D; ++k) m_in[i * D + k] = in[j * D + k];
        m_act[i] = act[j];
        m_logp[i] = logp[j];
        m_adv[i] = adv[j];
        m_ret[i] = ret[j];
        m_v[i] = val[j];
      });
      // forward
      actor_.forward(b_, params_.value.data(), m_in, int(M), upd_ws_.actor);
      critic_.forward(b_, params_.value.data(), m_in, int(M), upd_ws_.critic);
      const float* logits = upd_ws_.actor.act.back().data();
      const float* v = upd_ws_.critic.act.back().data();
      categorical_log_prob_entropy(b_, logits, m_act, mb_logp_.data(), mb_ent_.data(), M, A);
      // per-sample loss terms and the loss' gradients w.r.t. log π, the entropy and v (means over M)
      float *g_logp = mb_glogp_.data(), *g_ent = mb_gent_.data(), *dv = mb_dv_.data(), *terms = mb_terms_.data();
      ppo_minibatch_terms(b_, M, mb_logp_.data(), m_logp, mb_ent_.data(), m_adv, v, m_v, m_ret, cfg_.clip, cfg_.vf_coef,
                          cfg_.entropy_coef, g_logp, g_ent, dv, terms);
      // backward into the shared gradient blob (actor and critic own disjoint views), then one Adam step
      categorical_backward(b_, logits, m_act, g_logp, g_ent, mb_dlogits_.data(), M, A);
      actor_.backward(b_, params_.value.data(), params_.grad.data(), m_in, mb_dlogits_.data(),
                      static_cast<float*>(nullptr), upd_ws_.actor, false);
      critic_.backward(b_, params_.value.data(), params_.grad.data(), m_in, dv, static_cast<float*>(nullptr),
                       upd_ws_.critic, false);
      adam_.step(params_.value.data(), params_.grad.data());
      accumulate_terms(b_, M, terms, scalars_.data() + 2, term_acc_.data());
    }
  }
}

void check_rollout_size(int steps, int64_t envs) {
  if (steps < 1 || envs < 1 || int64_t(steps) * envs > int64_t(INT32_MAX))
    throw std::invalid_argument("rollout of " + std::to_string(steps) + " steps x " + std::to_string(envs) +
                                " envs: allowed 1 <= steps * envs <= 2147483647 (samples are indexed by int32)");
}

void draw_shuffles(Backend b, PermutationSampler& sampler, uint32_t seed, int epochs, uint32_t* draws, int32_t* perm) {
  for (int epoch = 0; epoch < epochs; ++epoch)
    sampler.draw(seed, StepRef(draws, uint32_t(epoch)), perm + int64_t(epoch) * sampler.size());
  parallel_for(b, 1, [=] DYN_LAMBDA(int64_t) { *draws += uint32_t(epochs); });
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

}  // namespace dyn
