// PpoCore: the policy step, rollout storage, reward scaling, GAE and the minibatch update of a feed-forward or
// recurrent PPO policy with a categorical or Gaussian head.
#include <cmath>
#include <stdexcept>
#include <string>

#include "algo/minibatch.h"
#include "algo/ppo_common.h"
#include "algo/ppo_core.h"
#include "kernels/collective.h"
#include "kernels/copy.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

ParamLayout& build(ParamLayout& layout, const EnvSpec& env, const PolicyShape& s, int hidden, Mlp& embed, Gru& gru,
                   Mlp& actor, Mlp& critic, PolicyHead& head) {
  int features = s.in_dim;
  if (s.recurrent) {
    embed = Mlp({{s.in_dim, s.embed}, Activation::relu, Activation::relu}, layout, "embed");
    gru = Gru(s.embed, s.rnn_hidden, layout, "gru");
    features = s.rnn_hidden;
  }
  // baselines' initialisation: orthogonal √2 for hidden layers, 0.01 for the policy output, 1 for the value
  actor = Mlp({{features, hidden, hidden, env.action_dim}}, layout, "actor", std::sqrt(2.0), 0.01);
  critic = Mlp({{features, hidden, hidden, 1}}, layout, "critic", std::sqrt(2.0), 1.0);
  head = PolicyHead(env, layout, "actor");
  return layout;
}

}  // namespace

namespace {

MinibatchPlan plan_of(const PolicyShape& shape, int64_t n_envs, const PpoConfig& cfg) {
  if (shape.recurrent) return MinibatchPlan(n_envs, cfg.minibatches);  // whole env sequences
  if (cfg.shuffle == ShufflePlan::per_env)
    return MinibatchPlan::per_env_steps(cfg.rollout_steps, n_envs, cfg.minibatches);
  return MinibatchPlan(int64_t(cfg.rollout_steps) * n_envs, cfg.minibatches);
}

}  // namespace

PpoCore::PpoCore(Backend b, const EnvSpec& env, const PolicyShape& shape, int64_t n_envs, const PpoConfig& cfg,
                 uint32_t seed, uint32_t first_env)
    : b_((check_rollout_size(cfg.rollout_steps, n_envs), b)),
      env_(env),
      shape_(shape),
      n_(n_envs),
      cfg_(cfg),
      params_(b, build(layout_, env, shape, cfg.hidden, embed_, gru_, actor_, critic_, head_), seed),
      adam_(b, layout_.total(), cfg.adam),
      ret_norm_(b, 1),
      episodes_(b, n_envs),
      seed_(seed),
      first_env_(first_env),
      plan_(plan_of(shape, n_envs, cfg)),
      shuffler_(b, cfg.shuffle == ShufflePlan::global ? plan_.items : 0),
      graphs_(b, cfg.cuda_graphs),
      draws_(b, 1),
      disc_ret_(b, size_t(n_envs)) {
  if (shape.recurrent && !plan_.even())
    throw std::invalid_argument("train.minibatches = " + std::to_string(cfg.minibatches) +
                                " must divide run.envs = " + std::to_string(n_envs) +
                                " for a recurrent policy: its minibatches are whole sequences");
  const int64_t T = cfg.rollout_steps, TN = T * n_, D = shape.in_dim, A = env.action_dim;
  const int64_t M = shape.recurrent ? T * plan_.largest() : plan_.largest();  // the largest minibatch's samples
  in_buf_ = Buffer<float>(b, TN * D);
  act_index_ = Buffer<int32_t>(b, env.discrete() ? TN : 0);
  act_value_ = Buffer<float>(b, env.discrete() ? 0 : TN * A);
  for (Buffer<float>* buf : {&logp_buf_, &final_val_buf_, &rew_buf_, &disc_buf_, &adv_buf_, &ret_buf_})
    *buf = Buffer<float>(b, TN);
  val_buf_ = Buffer<float>(b, TN + n_);
  trunc_buf_ = Buffer<uint8_t>(b, TN);
  term_buf_ = Buffer<uint8_t>(b, TN);
  reset_buf_ = Buffer<uint8_t>(b, shape.recurrent ? TN : 0);
  h0_buf_ = Buffer<float>(b, shape.recurrent ? n_ * shape.rnn_hidden : 0);
  if (shape.recurrent && cfg.shuffle == ShufflePlan::per_env && first_env % uint32_t(cfg.minibatches) != 0)
    throw std::invalid_argument(
        "train.shuffle = per_env: the first env " + std::to_string(first_env) +
        " of a recurrent policy's share must be a multiple of train.minibatches = " + std::to_string(cfg.minibatches));
  perm_ = Buffer<int32_t>(b, int64_t(cfg.epochs) * plan_.items);
  mb_in_ = Buffer<float>(b, M * D);
  for (Buffer<float>* buf :
       {&mb_old_logp_, &mb_adv_, &mb_ret_, &mb_old_v_, &mb_logp_, &mb_ent_, &mb_glogp_, &mb_gent_, &mb_dv_})
    *buf = Buffer<float>(b, M);
  mb_act_index_ = Buffer<int32_t>(b, env.discrete() ? M : 0);
  mb_act_value_ = Buffer<float>(b, env.discrete() ? 0 : M * A);
  mb_reset_ = Buffer<uint8_t>(b, shape.recurrent ? M : 0);
  mb_h0_ = Buffer<float>(b, shape.recurrent ? plan_.largest() * shape.rnn_hidden : 0);
  mb_dout_ = Buffer<float>(b, M * A);
  mb_dhead_ = Buffer<float>(b, env.discrete() ? 0 : M * A);
  mb_dfeat_ = Buffer<float>(b, shape.recurrent ? M * shape.rnn_hidden : 0);
  mb_dembed_ = Buffer<float>(b, shape.recurrent ? M * shape.embed : 0);
  mb_terms_ = Buffer<float>(b, 5 * M);
  scalars_ = Buffer<float>(b, 8);
  term_acc_ = Buffer<double>(b, 5);
  // the heads' workspaces at the largest minibatch (sizes differ by one), so a captured update never reallocates
  upd_ws_.actor.reserve(b, actor_.shape(), int(M));
  upd_ws_.critic.reserve(b, critic_.shape(), int(M));
  disc_ret_.zero();
  final_val_buf_.zero();
  draws_.zero();
}

ActionBuffers PpoCore::action(int t) {
  const int64_t o = int64_t(t) * n_;
  return env_.discrete() ? ActionBuffers{act_index_.data() + o, nullptr}
                         : ActionBuffers{nullptr, act_value_.data() + o * env_.action_dim};
}

void PpoCore::features(PolicyWorkspace& ws, const PolicyStep& s) {
  // embedding → one GRU step from h (restarting where start); the new state also goes to h_out
  const float* p = params_.value.data();
  embed_.forward(b_, p, s.in, int(s.n), ws.embed);
  gru_.forward(b_, p, ws.embed.act.back().data(), s.start, static_cast<const float*>(nullptr), s.h, 1, int(s.n),
               ws.gru);
  if (s.h_out) copy_values(b_, ws.gru.h.data(), s.h_out, s.n * shape_.rnn_hidden);
}

void PpoCore::policy_step(PolicyWorkspace& ws, const PolicyStep& s) {
  const float* p = params_.value.data();
  const float* feats = s.in;
  if (shape_.recurrent) {
    features(ws, s);
    feats = ws.gru.h.data();
  }
  const bool acting = s.actions.index || s.actions.value;
  if (acting || s.logp) {
    actor_.forward(b_, p, feats, int(s.n), ws.actor);
    const float* out = ws.actor.act.back().data();
    if (acting) head_.act(b_, p, out, s.deterministic, s.seed, s.step, s.actions, s.n, s.first_env);
    if (s.logp) head_.log_prob_entropy(b_, p, out, s.actions.batch(), s.logp, static_cast<float*>(nullptr), s.n);
  }
  if (s.values) {
    critic_.forward(b_, p, feats, int(s.n), ws.critic);
    copy_values(b_, ws.critic.act.back().data(), s.values, s.n);
  }
}

void PpoCore::begin_rollout() { episodes_.clear(); }

void PpoCore::track_step(int t, const int32_t* session_id) {
  track_discounted_return(b_, n_, cfg_.gamma, reward(t), truncated(t), terminated(t), disc_ret_.data(),
                          disc_buf_.data() + int64_t(t) * n_);
  episodes_.after_step(reward(t), truncated(t), terminated(t), session_id);
}

void PpoCore::finish_rollout() {
  // scale rewards by the running std of the discounted return (SPEC §3), clipped to ±10
  const int64_t TN = int64_t(cfg_.rollout_steps) * n_;
  ret_norm_.update(disc_buf_.data(), TN);
  ret_norm_.scale(rew_buf_.data(), rew_buf_.data(), TN);
}

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
    draw_epoch_orders();  // samples or env sequences
    update_minibatches();
  });
  read_update_stats(term_acc_, cfg_.epochs * cfg_.minibatches, adam_.last_grad_norm(), st);
}

void PpoCore::draw_epoch_orders() {
  if (cfg_.shuffle == ShufflePlan::global) {
    draw_shuffles(b_, shuffler_, seed_, cfg_.epochs, draws_.data(), perm_.data());
    return;
  }
  for (int epoch = 0; epoch < cfg_.epochs; ++epoch) {
    const StepRef draw(draws_.data(), uint32_t(epoch));
    int32_t* perm = perm_.data() + int64_t(epoch) * plan_.items;
    if (shape_.recurrent)
      draw_per_env_blocks(b_, seed_, draw, n_, cfg_.minibatches, first_env_, perm);
    else
      draw_per_env_steps(b_, seed_, draw, cfg_.rollout_steps, n_, cfg_.minibatches, first_env_, perm);
  }
  advance_counter(b_, draws_.data(), uint32_t(cfg_.epochs));
}

void PpoCore::update_minibatches() {
  const bool rnn = shape_.recurrent;
  const int T = cfg_.rollout_steps, H = shape_.rnn_hidden, A = env_.action_dim;
  const SampleRows rows{shape_.in_dim,        A,
                        in_buf_.data(),       logp_buf_.data(),
                        adv_buf_.data(),      ret_buf_.data(),
                        val_buf_.data(),      env_.discrete() ? nullptr : act_value_.data(),
                        act_index_.data(),    rnn ? reset_buf_.data() : nullptr,
                        mb_in_.data(),        mb_old_logp_.data(),
                        mb_adv_.data(),       mb_ret_.data(),
                        mb_old_v_.data(),     mb_act_value_.data(),
                        mb_act_index_.data(), mb_reset_.data()};
  const ActionBatch mb_actions{mb_act_index_.data(), mb_act_value_.data()};
  float* p = params_.value.data();
  float* g = params_.grad.data();
  term_acc_.zero();
  for (int epoch = 0; epoch < cfg_.epochs; ++epoch) {
    for (int mb = 0; mb < cfg_.minibatches; ++mb) {
      // gather: M samples, or the whole sequences [T, Nm] of Nm envs with their starting states
      const int32_t* idx = perm_.data() + epoch * plan_.items + plan_.begin(mb);
      const int64_t taken = plan_.count(mb);  // samples, or env sequences
      const int64_t Nm = rnn ? taken : 0, M = rnn ? int64_t(T) * Nm : taken;
      const float* feats = mb_in_.data();
      if (rnn) {
        gather_sequences(b_, rows, idx, T, n_, Nm, H, h0_buf_.data(), mb_h0_.data());
        embed_.forward(b_, p, mb_in_.data(), int(M), upd_ws_.embed);
        gru_.forward(b_, p, upd_ws_.embed.act.back().data(), mb_reset_.data(), static_cast<const float*>(nullptr),
                     mb_h0_.data(), T, int(Nm), upd_ws_.gru);
        feats = upd_ws_.gru.h.data();  // [T, Nm, H]
      } else {
        gather_samples(b_, rows, idx, M);
      }
      // forward: the heads, the log-probabilities and entropies, the per-sample loss terms and their gradients
      actor_.forward(b_, p, feats, int(M), upd_ws_.actor);
      critic_.forward(b_, p, feats, int(M), upd_ws_.critic);
      const float* out = upd_ws_.actor.act.back().data();
      const float* v = upd_ws_.critic.act.back().data();
      head_.log_prob_entropy(b_, p, out, mb_actions, mb_logp_.data(), mb_ent_.data(), M);
      ppo_minibatch_terms(b_, M, mb_logp_.data(), mb_old_logp_.data(), mb_ent_.data(), mb_adv_.data(), v,
                          mb_old_v_.data(), mb_ret_.data(), cfg_.clip, cfg_.vf_coef, cfg_.entropy_coef,
                          mb_glogp_.data(), mb_gent_.data(), mb_dv_.data(), mb_terms_.data());
      // backward: the heads (disjoint views of the gradient blob), then, recurrent, the GRU through time and the
      // embedding from the heads' summed input gradient; then one Adam step
      if (rnn) {
        params_.grad.zero();
        mb_dfeat_.zero();
      }
      head_.backward(b_, p, g, out, mb_actions, mb_glogp_.data(), mb_gent_.data(), mb_dout_.data(), mb_dhead_.data(), M,
                     rnn);
      float* dfeat = rnn ? mb_dfeat_.data() : static_cast<float*>(nullptr);
      actor_.backward(b_, p, g, feats, mb_dout_.data(), dfeat, upd_ws_.actor, rnn);
      critic_.backward(b_, p, g, feats, mb_dv_.data(), dfeat, upd_ws_.critic, rnn);
      if (rnn) {
        gru_.backward(b_, p, g, upd_ws_.embed.act.back().data(), mb_reset_.data(), mb_dfeat_.data(), 0,
                      mb_dembed_.data(), static_cast<float*>(nullptr), static_cast<float*>(nullptr), upd_ws_.gru);
        embed_.backward(b_, p, g, mb_in_.data(), mb_dembed_.data(), static_cast<float*>(nullptr), upd_ws_.embed, true);
      }
      adam_.step(p, g);
      accumulate_terms(b_, M, mb_terms_.data(), scalars_.data() + 2, term_acc_.data());
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
  advance_counter(b, draws, uint32_t(epochs));
}

void read_update_stats(Buffer<double>& term_acc, int updates, double grad_norm, IterationStats& st) {
  sum_over_ranks(term_acc.backend(), term_acc.data(), int64_t(term_acc.size()));
  updates *= data_parallel_ranks();
  const std::vector<double> sums = term_acc.to_host();  // the one read of the update
  st.policy_loss = sums[0] / updates;
  st.value_loss = sums[1] / updates;
  st.entropy = sums[2] / updates;
  st.approx_kl = sums[3] / updates;
  st.clip_fraction = sums[4] / updates;
  st.grad_norm = grad_norm;
}

void PpoCore::visit_state(StateVisitor& v) {
  v.part("params", params_);
  v.part("adam", adam_);
  v.part("reward_norm", ret_norm_);
  v.part("episodes", episodes_);
  v.buffer("shuffle_draws", draws_);
  v.buffer("discounted_return", disc_ret_);
  v.buffer("h0", h0_buf_);
}

}  // namespace dyn
