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

// out[s, t, e, w] = in[t, s·N + e, w]: a time-major rollout array of S runs (rows of `width` values) rearranged by run.
template <class T>
struct ToSeedMajor {
  int64_t steps, n, runs, width;
  const T* in;
  T* out;
  DYN_HD void operator()(int64_t i) const {
    const int64_t w = i % width, row = i / width;
    const int64_t e = row % n, t = (row / n) % steps, s = row / (n * steps);
    out[i] = in[((t * runs + s) * n + e) * width + w];
  }
};

template <class T>
void to_runs(Backend b, int64_t steps, int64_t n, int64_t runs, int64_t width, const Buffer<T>& in, Buffer<T>& out) {
  if (in.size() == 0) return;
  parallel_for(b, runs * steps * n * width, ToSeedMajor<T>{steps, n, runs, width, in.data(), out.data()});
}

}  // namespace

PpoCore::PpoCore(Backend b, const EnvSpec& env, const PolicyShape& shape, int64_t n_envs, const PpoConfig& cfg,
                 uint32_t seed, uint32_t first_env)
    : PpoCore(b, env, shape, n_envs, cfg, std::vector<uint32_t>{seed}, first_env) {}

PpoCore::PpoCore(Backend b, const EnvSpec& env, const PolicyShape& shape, int64_t n_envs, const PpoConfig& cfg,
                 const std::vector<uint32_t>& seeds, uint32_t first_env)
    : b_((check_rollout_size(cfg.rollout_steps, n_envs * int64_t(seeds.size())), b)),
      env_(env),
      shape_(shape),
      n_(n_envs),
      cols_(n_envs * int64_t(seeds.size())),
      cfg_(cfg),
      params_(b, build(layout_, env, shape, cfg.hidden, embed_, gru_, actor_, critic_, head_), seeds),
      adam_(b, layout_.total(), cfg.adam, int(seeds.size())),
      ret_norms_(b, 1, int(seeds.size())),
      episodes_(b, n_envs, int(seeds.size())),
      seeds_(seeds),
      seeds_dev_(Buffer<uint32_t>::copy_of(b, seeds)),
      first_env_(first_env),
      plan_(plan_of(shape, n_envs, cfg)),
      shuffler_(b, cfg.shuffle == ShufflePlan::global ? plan_.items : 0, int(seeds.size()) * cfg.epochs),
      graphs_(b, cfg.cuda_graphs),
      draws_(b, seeds.size()),
      disc_ret_(b, size_t(cols_)) {
  const int S = int(seeds.size());
  if (S < 1) throw std::invalid_argument("PpoCore: a seed batch needs at least one seed");
  if (shape.recurrent && !plan_.even())
    throw std::invalid_argument("train.minibatches = " + std::to_string(cfg.minibatches) +
                                " must divide run.envs = " + std::to_string(n_envs) +
                                " for a recurrent policy: its minibatches are whole sequences");
  const int64_t T = cfg.rollout_steps, TC = T * cols_, D = shape.in_dim, A = env.action_dim;
  const int64_t M = shape.recurrent ? T * plan_.largest() : plan_.largest();  // the largest minibatch's samples
  in_buf_ = Buffer<float>(b, TC * D);
  act_index_ = Buffer<int32_t>(b, env.discrete() ? TC : 0);
  act_value_ = Buffer<float>(b, env.discrete() ? 0 : TC * A);
  for (Buffer<float>* buf : {&logp_buf_, &final_val_buf_, &rew_buf_, &disc_buf_, &adv_buf_, &ret_buf_})
    *buf = Buffer<float>(b, TC);
  val_buf_ = Buffer<float>(b, TC + cols_);
  trunc_buf_ = Buffer<uint8_t>(b, TC);
  term_buf_ = Buffer<uint8_t>(b, TC);
  reset_buf_ = Buffer<uint8_t>(b, shape.recurrent ? TC : 0);
  h0_buf_ = Buffer<float>(b, shape.recurrent ? cols_ * shape.rnn_hidden : 0);
  if (S > 1) {
    sm_in_ = Buffer<float>(b, in_buf_.size());
    sm_act_index_ = Buffer<int32_t>(b, act_index_.size());
    sm_act_value_ = Buffer<float>(b, act_value_.size());
    for (Buffer<float>* buf : {&sm_logp_, &sm_final_val_, &sm_rew_, &sm_disc_}) *buf = Buffer<float>(b, TC);
    sm_val_ = Buffer<float>(b, val_buf_.size());
    sm_trunc_ = Buffer<uint8_t>(b, TC);
    sm_term_ = Buffer<uint8_t>(b, TC);
    sm_reset_ = Buffer<uint8_t>(b, reset_buf_.size());
  }
  if (shape.recurrent && cfg.shuffle == ShufflePlan::per_env && first_env % uint32_t(cfg.minibatches) != 0)
    throw std::invalid_argument(
        "train.shuffle = per_env: the first env " + std::to_string(first_env) +
        " of a recurrent policy's share must be a multiple of train.minibatches = " + std::to_string(cfg.minibatches));
  perm_ = Buffer<int32_t>(b, int64_t(S) * cfg.epochs * plan_.items);
  mb_in_ = Buffer<float>(b, S * M * D);
  for (Buffer<float>* buf :
       {&mb_old_logp_, &mb_adv_, &mb_ret_, &mb_old_v_, &mb_logp_, &mb_ent_, &mb_glogp_, &mb_gent_, &mb_dv_})
    *buf = Buffer<float>(b, S * M);
  mb_act_index_ = Buffer<int32_t>(b, env.discrete() ? S * M : 0);
  mb_act_value_ = Buffer<float>(b, env.discrete() ? 0 : S * M * A);
  mb_reset_ = Buffer<uint8_t>(b, shape.recurrent ? S * M : 0);
  mb_h0_ = Buffer<float>(b, shape.recurrent ? S * plan_.largest() * shape.rnn_hidden : 0);
  mb_dout_ = Buffer<float>(b, S * M * A);
  mb_dhead_ = Buffer<float>(b, env.discrete() ? 0 : S * M * A);
  mb_dfeat_ = Buffer<float>(b, shape.recurrent ? S * M * shape.rnn_hidden : 0);
  mb_dembed_ = Buffer<float>(b, shape.recurrent ? S * M * shape.embed : 0);
  mb_terms_ = Buffer<float>(b, 5 * S * M);
  scalars_ = Buffer<float>(b, size_t(2 + 5 * S));  // GAE's 2S moments, or 2 + the update's 5S sums
  term_acc_ = Buffer<double>(b, 5 * S);
  // the heads' workspaces at the largest minibatch (sizes differ by one), so a captured update never reallocates
  upd_ws_.actor.reserve(b, actor_.shape(), int(S * M));
  upd_ws_.critic.reserve(b, critic_.shape(), int(S * M));
  disc_ret_.zero();
  final_val_buf_.zero();
  draws_.zero();
}

ActionBuffers PpoCore::action(int t) {
  const int64_t o = int64_t(t) * cols_;
  return env_.discrete() ? ActionBuffers{act_index_.data() + o, nullptr}
                         : ActionBuffers{nullptr, act_value_.data() + o * env_.action_dim};
}

void PpoCore::policy_step(PolicyWorkspace& ws, const PolicyStep& s) {
  // runs [s.run, s.run + R) of the batch, `rows` rows each: one batched pass of each network and of the head
  const size_t P = layout_.total();
  const int R = s.runs;
  const int64_t rows = s.n / R;
  const float* p = params_.value.data() + size_t(s.run) * P;
  auto forward = [&](const Mlp& mlp, const float* x, MlpWorkspace<float>& w) {
    if (R == 1)
      mlp.forward(b_, p, x, int(s.n), w);
    else
      mlp.forward_seeds(b_, p, P, x, R, int(rows), w);
  };
  const float* feats = s.in;
  if (shape_.recurrent) {
    // embedding → one GRU step from h (restarting where start): R seed-major sequences of one step [R, 1, rows, ·];
    // the new state also goes to h_out
    forward(embed_, s.in, ws.embed);
    const float* x = ws.embed.act.back().data();
    const float* none = nullptr;
    if (R == 1)
      gru_.forward(b_, p, x, s.start, none, s.h, 1, int(s.n), ws.gru);
    else
      gru_.forward_seeds(b_, p, P, x, s.start, none, s.h, R, 1, int(rows), ws.gru);
    if (s.h_out) copy_values(b_, ws.gru.h.data(), s.h_out, s.n * shape_.rnn_hidden);
    feats = ws.gru.h.data();
  }
  const bool acting = s.actions.index || s.actions.value;
  if (acting || s.logp) {
    // the head over every run's rows at once: run r's samples keyed by its seed, its log-std P apart
    forward(actor_, feats, ws.actor);
    const float* out = ws.actor.act.back().data();
    const BatchRows keys = R > 1                ? BatchRows{0, s.first_env, seeds_dev_.data() + s.run, rows}
                           : seeds_.size() == 1 ? BatchRows{s.seed, s.first_env}
                                                : BatchRows{seeds_[size_t(s.run)], s.first_env};
    if (acting) head_.act(b_, p, out, s.deterministic, keys, s.step, s.actions, s.n, P);
    if (s.logp) head_.log_prob_entropy(b_, p, out, s.actions.batch(), s.logp, static_cast<float*>(nullptr), s.n, R, P);
  }
  if (s.values) {
    forward(critic_, feats, ws.critic);
    copy_values(b_, ws.critic.act.back().data(), s.values, s.n);
  }
}

void PpoCore::begin_rollout() { episodes_.clear(); }

void PpoCore::track_step(int t, const int32_t* session_id) {
  track_discounted_return(b_, cols_, cfg_.gamma, reward(t), truncated(t), terminated(t), disc_ret_.data(),
                          disc_buf_.data() + int64_t(t) * cols_);
  episodes_.after_step(reward(t), truncated(t), terminated(t), session_id);
}

void PpoCore::to_seed_major() {
  const int64_t T = cfg_.rollout_steps, S = runs();
  to_runs(b_, T, n_, S, shape_.in_dim, in_buf_, sm_in_);
  to_runs(b_, T, n_, S, 1, act_index_, sm_act_index_);
  to_runs(b_, T, n_, S, env_.action_dim, act_value_, sm_act_value_);
  to_runs(b_, T, n_, S, 1, logp_buf_, sm_logp_);
  to_runs(b_, T + 1, n_, S, 1, val_buf_, sm_val_);
  to_runs(b_, T, n_, S, 1, final_val_buf_, sm_final_val_);
  to_runs(b_, T, n_, S, 1, rew_buf_, sm_rew_);
  to_runs(b_, T, n_, S, 1, disc_buf_, sm_disc_);
  to_runs(b_, T, n_, S, 1, trunc_buf_, sm_trunc_);
  to_runs(b_, T, n_, S, 1, term_buf_, sm_term_);
  to_runs(b_, T, n_, S, 1, reset_buf_, sm_reset_);
}

void PpoCore::finish_rollout() {
  // scale rewards by the running std of the discounted return (SPEC §3), clipped to ±10 — each run by its own
  const int64_t TN = int64_t(cfg_.rollout_steps) * n_;
  if (runs() > 1) to_seed_major();
  float* rew = block(rew_buf_, sm_rew_, 0, TN);  // [S, T·N]
  ret_norms_.update(block(disc_buf_, sm_disc_, 0, TN), TN);
  ret_norms_.scale(rew, rew, TN);
}

void PpoCore::advantages() {
  DYN_NVTX_RANGE("ppo_advantages");
  const int T = cfg_.rollout_steps;
  const int64_t TN = int64_t(T) * n_;
  graphs_.run(kGraphAdvantages, [&] {  // every run's blocks [S, T, N] (seed-major) in one launch
    advantages_normalized(b_, T, n_, block(rew_buf_, sm_rew_, 0, TN), block(val_buf_, sm_val_, 0, TN + n_),
                          block(term_buf_, sm_term_, 0, TN), block(trunc_buf_, sm_trunc_, 0, TN),
                          block(final_val_buf_, sm_final_val_, 0, TN), cfg_.gamma, cfg_.gae_lambda, adv_buf_.data(),
                          ret_buf_.data(), scalars_.data(), runs());
  });
}

void PpoCore::update(IterationStats* st) {
  DYN_NVTX_RANGE("ppo_update");
  graphs_.run(kGraphUpdate, [&] {
    draw_epoch_orders();  // samples or env sequences
    update_minibatches();
  });
  read_update_stats(term_acc_, cfg_.epochs * cfg_.minibatches, adam_.last_grad_norms(), st);
}

void PpoCore::draw_epoch_orders() {
  // every run's order of every epoch in one draw, each exactly what that run draws alone; then the draw counters
  const RunDraws draws{seeds_dev_.data(), draws_.data(), runs(), cfg_.epochs};
  if (cfg_.shuffle == ShufflePlan::global)
    shuffler_.draw_runs(draws, perm_.data());
  else if (shape_.recurrent)
    draw_per_env_blocks(b_, 0, 0u, n_, cfg_.minibatches, first_env_, perm_.data(), draws);
  else
    draw_per_env_steps(b_, 0, 0u, cfg_.rollout_steps, n_, cfg_.minibatches, first_env_, perm_.data(), draws);
  advance_counter(b_, draws_.data(), uint32_t(cfg_.epochs), runs());
}

void PpoCore::update_minibatches() {
  const bool rnn = shape_.recurrent;
  const int T = cfg_.rollout_steps, H = shape_.rnn_hidden, A = env_.action_dim, D = shape_.in_dim;
  const int R = runs();
  const int64_t TN = int64_t(T) * n_;
  const size_t P = layout_.total();
  // the rollout (seed-major blocks [S, T·N] in a seed batch) and the minibatch rows [S, M], for one gather of every run
  const SampleRows sample_rows{D,
                               A,
                               block(in_buf_, sm_in_, 0, TN * D),
                               block(logp_buf_, sm_logp_, 0, TN),
                               adv_buf_.data(),
                               ret_buf_.data(),
                               block(val_buf_, sm_val_, 0, TN + n_),
                               env_.discrete() ? nullptr : block(act_value_, sm_act_value_, 0, TN * A),
                               env_.discrete() ? block(act_index_, sm_act_index_, 0, TN) : nullptr,
                               rnn ? block(reset_buf_, sm_reset_, 0, TN) : nullptr,
                               mb_in_.data(),
                               mb_old_logp_.data(),
                               mb_adv_.data(),
                               mb_ret_.data(),
                               mb_old_v_.data(),
                               env_.discrete() ? nullptr : mb_act_value_.data(),
                               env_.discrete() ? mb_act_index_.data() : nullptr,
                               rnn ? mb_reset_.data() : nullptr};
  const RunBlocks run_blocks{R, int64_t(cfg_.epochs) * plan_.items, TN, TN + n_};
  float* p = params_.value.data();
  float* g = params_.grad.data();
  auto forward = [&](const Mlp& mlp, const float* x, int64_t m, MlpWorkspace<float>& w) {
    if (R == 1)
      mlp.forward(b_, p, x, int(m), w);
    else
      mlp.forward_seeds(b_, p, P, x, R, int(m), w);
  };
  // accumulate (recurrent): the parameter gradients and dx add to what is there
  auto backward = [&](const Mlp& mlp, const float* x, const float* dy, float* dx, MlpWorkspace<float>& w,
                      bool accumulate) {
    if (R == 1)
      mlp.backward(b_, p, g, x, dy, dx, w, accumulate);
    else
      mlp.backward_seeds(b_, p, g, P, x, dy, dx, R, w, accumulate);
  };
  const float* none = nullptr;
  float* no_grad = nullptr;
  term_acc_.zero();
  for (int epoch = 0; epoch < cfg_.epochs; ++epoch) {
    for (int mb = 0; mb < cfg_.minibatches; ++mb) {
      // gather: M samples of each run, or the whole sequences [T, Nm] of Nm envs with their starting states
      const int64_t taken = plan_.count(mb);  // samples, or env sequences
      const int64_t Nm = rnn ? taken : 0, M = rnn ? int64_t(T) * Nm : taken;
      const float* feats = mb_in_.data();
      const int32_t* idx = perm_.data() + int64_t(epoch) * plan_.items + plan_.begin(mb);  // run 0's; [S, E, items]
      if (rnn)
        gather_sequences(b_, sample_rows, idx, T, n_, Nm, H, h0_buf_.data(), mb_h0_.data(), run_blocks);
      else
        gather_samples(b_, sample_rows, idx, M, run_blocks);
      if (rnn) {
        forward(embed_, mb_in_.data(), M, upd_ws_.embed);
        const float* x = upd_ws_.embed.act.back().data();
        if (R == 1)
          gru_.forward(b_, p, x, mb_reset_.data(), none, mb_h0_.data(), T, int(Nm), upd_ws_.gru);
        else
          gru_.forward_seeds(b_, p, P, x, mb_reset_.data(), none, mb_h0_.data(), R, T, int(Nm), upd_ws_.gru);
        feats = upd_ws_.gru.h.data();  // [S, T, Nm, H]
      }
      // forward: the heads, the log-probabilities and entropies, the per-sample loss terms and their gradients
      forward(actor_, feats, M, upd_ws_.actor);
      forward(critic_, feats, M, upd_ws_.critic);
      const float* out = upd_ws_.actor.act.back().data();  // [R, M, A]
      const float* v = upd_ws_.critic.act.back().data();   // [R, M]
      head_.log_prob_entropy(b_, p, out, ActionBatch{mb_act_index_.data(), mb_act_value_.data()}, mb_logp_.data(),
                             mb_ent_.data(), R * M, R, P);
      ppo_minibatch_terms(b_, M, mb_logp_.data(), mb_old_logp_.data(), mb_ent_.data(), mb_adv_.data(), v,
                          mb_old_v_.data(), mb_ret_.data(), cfg_.clip, cfg_.vf_coef, cfg_.entropy_coef,
                          mb_glogp_.data(), mb_gent_.data(), mb_dv_.data(), mb_terms_.data(), R);
      // backward: the heads (disjoint views of the gradient blob), then, recurrent, the GRU through time and the
      // embedding from the heads' summed input gradient; then one Adam step
      if (rnn) {
        params_.grad.zero();
        mb_dfeat_.zero();
      }
      head_.backward(b_, p, g, out, ActionBatch{mb_act_index_.data(), mb_act_value_.data()}, mb_glogp_.data(),
                     mb_gent_.data(), mb_dout_.data(), env_.discrete() ? nullptr : mb_dhead_.data(), R * M, rnn, R, P);
      float* dfeat = rnn ? mb_dfeat_.data() : static_cast<float*>(nullptr);
      backward(actor_, feats, mb_dout_.data(), dfeat, upd_ws_.actor, rnn);
      backward(critic_, feats, mb_dv_.data(), dfeat, upd_ws_.critic, rnn);
      if (rnn) {
        const float* x = upd_ws_.embed.act.back().data();
        if (R == 1)
          gru_.backward(b_, p, g, x, mb_reset_.data(), mb_dfeat_.data(), 0, mb_dembed_.data(), no_grad, no_grad,
                        upd_ws_.gru);
        else
          gru_.backward_seeds(b_, p, g, P, x, mb_reset_.data(), mb_dfeat_.data(), 0, mb_dembed_.data(), no_grad,
                              no_grad, upd_ws_.gru);
        backward(embed_, mb_in_.data(), mb_dembed_.data(), no_grad, upd_ws_.embed, true);
      }
      adam_.step(p, g);
      accumulate_terms(b_, M, mb_terms_.data(), scalars_.data() + 2, term_acc_.data(), R);
    }
  }
}

void check_rollout_size(int steps, int64_t envs) {
  if (steps < 1 || envs < 1 || int64_t(steps) * envs > int64_t(INT32_MAX))
    throw std::invalid_argument("rollout of " + std::to_string(steps) + " steps x " + std::to_string(envs) +
                                " envs: allowed 1 <= steps * envs <= 2147483647 (samples are indexed by int32)");
}

void read_update_stats(Buffer<double>& term_acc, int updates, const std::vector<double>& grad_norms,
                       IterationStats* st) {
  sum_over_ranks(term_acc.backend(), term_acc.data(), int64_t(term_acc.size()));
  updates *= data_parallel_ranks();
  const std::vector<double> all = term_acc.to_host();  // the one read of the update
  for (size_t r = 0; r < grad_norms.size(); ++r) {
    const double* sums = all.data() + 5 * r;
    st[r].policy_loss = sums[0] / updates;
    st[r].value_loss = sums[1] / updates;
    st[r].entropy = sums[2] / updates;
    st[r].approx_kl = sums[3] / updates;
    st[r].clip_fraction = sums[4] / updates;
    st[r].grad_norm = grad_norms[r];
  }
}

void PpoCore::visit_state(StateVisitor& v, int run) {
  v.part("params", params_, run);
  v.part("adam", adam_, run);
  v.part("reward_norm", ret_norms_[run]);
  v.part("episodes", episodes_, run);
  v.array("shuffle_draws", DType::u32, {1}, draws_.data() + run, b_);
  v.array("discounted_return", DType::f32, {n_}, disc_ret_.data() + run * n_, b_);
  v.share("h0", h0_buf_, run, runs());
}

}  // namespace dyn
