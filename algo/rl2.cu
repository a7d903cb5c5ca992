// RL² on the gridworld: recurrent collect, PPO update through the GRU.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "algo/ppo_common.h"
#include "algo/rl2.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "nn/distributions_batch.h"

namespace dyn {

namespace {

constexpr int kIn = kGridObsDim + kGridActions + 1;  // [s, one-hot a_{t-1}, r_{t-1}]

ParamLayout& build(ParamLayout& layout, Mlp& embed, Gru& gru, Mlp& actor, Mlp& critic, const Rl2Shape& s, int hidden) {
  embed = Mlp({{kIn, s.embed}, Activation::relu, Activation::relu}, layout, "embed");
  gru = Gru(s.embed, s.hidden, layout, "gru");
  actor = Mlp({{s.hidden, hidden, hidden, kGridActions}}, layout, "actor", std::sqrt(2.0), 0.01);
  critic = Mlp({{s.hidden, hidden, hidden, 1}}, layout, "critic", std::sqrt(2.0), 1.0);
  return layout;
}

}  // namespace

GridRl2::GridRl2(Backend b, const GridParams& env, int64_t n_envs, const PpoConfig& cfg, Rl2Shape shape)
    : b_((check_rollout_size(cfg.rollout_steps, n_envs), b)),
      env_(env),
      n_(n_envs),
      cfg_(cfg),
      shape_(shape),
      params_(b, build(layout_, embed_, gru_, actor_, critic_, shape, cfg.hidden), env.seed),
      adam_(b, layout_.total(), cfg.adam),
      obs_norm_(b, kGridObsDim),
      ret_norm_(b, 1),
      shuffler_(b, n_envs),
      graphs_(b, cfg.cuda_graphs),
      step_dev_(b, 1),
      draws_(b, 1) {
  const int64_t T = cfg.rollout_steps, N = n_, TN = T * N, H = shape.hidden;
  const int64_t Nm = N / cfg.minibatches, M = T * Nm;
  state_ = Buffer<GridState>(b, N);
  obs_ = Buffer<float>(b, N * kGridObsDim);
  final_obs_ = Buffer<float>(b, N * kGridObsDim);
  h_ = Buffer<float>(b, N * H);
  h_next_ = Buffer<float>(b, N * H);
  prev_a_ = Buffer<int32_t>(b, N);
  prev_r_ = Buffer<float>(b, N);
  start_ = Buffer<uint8_t>(b, N);
  disc_ret_ = Buffer<float>(b, N);
  ep_ret_ = Buffer<float>(b, N);
  episode_sums_ = Buffer<double>(b, 2 * N);
  x_extra_ = Buffer<float>(b, N * kIn);
  no_start_ = Buffer<uint8_t>(b, N);
  no_start_.zero();
  h0_buf_ = Buffer<float>(b, N * H);
  x_buf_ = Buffer<float>(b, TN * kIn);
  reset_buf_ = Buffer<uint8_t>(b, TN);
  act_buf_ = Buffer<int32_t>(b, TN);
  for (Buffer<float>* buf : {&logp_buf_, &rew_buf_, &disc_buf_, &final_val_buf_, &adv_buf_, &ret_buf_})
    *buf = Buffer<float>(b, TN);
  val_buf_ = Buffer<float>(b, TN + N);
  trunc_buf_ = Buffer<uint8_t>(b, TN);
  term_buf_ = Buffer<uint8_t>(b, TN);
  send_buf_ = Buffer<uint8_t>(b, TN);
  sid_buf_ = Buffer<int32_t>(b, TN);
  mb_x_ = Buffer<float>(b, M * kIn);
  mb_h0_ = Buffer<float>(b, Nm * H);
  for (Buffer<float>* buf :
       {&mb_old_logp_, &mb_adv_, &mb_ret_, &mb_old_v_, &mb_logp_, &mb_ent_, &mb_glogp_, &mb_gent_, &mb_dv_})
    *buf = Buffer<float>(b, M);
  mb_reset_ = Buffer<uint8_t>(b, M);
  mb_act_ = Buffer<int32_t>(b, M);
  env_perm_ = Buffer<int32_t>(b, int64_t(cfg.epochs) * N);
  mb_dlogits_ = Buffer<float>(b, M * kGridActions);
  mb_dh_ = Buffer<float>(b, M * H);
  mb_dembed_ = Buffer<float>(b, M * shape.embed);
  mb_terms_ = Buffer<float>(b, 5 * M);
  scalars_ = Buffer<float>(b, 8);
  term_acc_ = Buffer<double>(b, 5);
  for (Buffer<float>* buf : {&h_, &prev_r_, &disc_ret_, &ep_ret_, &final_val_buf_}) buf->zero();
  prev_a_.zero();
  step_dev_.zero();
  draws_.zero();
  const uint8_t one = 1;
  std::vector<uint8_t> starts(N, one);
  start_.from_host(starts);
  gridworld_reset(b_, env_, state_.data(), obs_.data(), N, 0);
}

void GridRl2::step_policy(Rl2StepWorkspaces& ws, const float* obs_raw, const int32_t* prev_a, const float* prev_r,
                          const uint8_t* start, const float* h, int64_t n, float* x_out, float* h_out,
                          bool with_value) {
  // x = [norm(s), one-hot a_{t-1}, r_{t-1}], zeros for a and r where an episode starts
  if (ws.obs_norm.size() < size_t(n * kGridObsDim)) ws.obs_norm = Buffer<float>(b_, n * kGridObsDim);
  obs_norm_.normalize(obs_raw, ws.obs_norm.data(), n);
  const float* s = ws.obs_norm.data();
  parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) {
    float* x = x_out + i * kIn;
    for (int k = 0; k < kGridObsDim; ++k) x[k] = s[i * kGridObsDim + k];
    for (int k = 0; k < kGridActions; ++k) x[kGridObsDim + k] = (!start[i] && prev_a[i] == k) ? 1.0f : 0.0f;
    x[kIn - 1] = start[i] ? 0.0f : prev_r[i];
  });
  const float* p = params_.value.data();
  embed_.forward(b_, p, x_out, int(n), ws.embed);
  gru_.forward(b_, p, ws.embed.act.back().data(), start, static_cast<const float*>(nullptr), h, 1, int(n), ws.gru);
  const float* hn = ws.gru.h.data();  // the GRU has read h: h_out may alias it
  parallel_for(b_, n * shape_.hidden, [=] DYN_LAMBDA(int64_t i) { h_out[i] = hn[i]; });
  actor_.forward(b_, p, h_out, int(n), ws.actor);
  if (with_value) critic_.forward(b_, p, h_out, int(n), ws.critic);
}

void GridRl2::collect(IterationStats& st) {
  DYN_NVTX_RANGE("rl2_collect");
  graphs_.run(step_ % uint32_t(env_.session.horizon), [&] { collect_steps(); });
  step_ += uint32_t(cfg_.rollout_steps);
  frames_ += int64_t(cfg_.rollout_steps) * n_;
  st.train_return = mean_episode_return(episode_sums_, n_, &st.episodes);
}

void GridRl2::collect_steps() {
  const int T = cfg_.rollout_steps;
  const int64_t n = n_, H = shape_.hidden;
  const uint32_t step0 = step_;  // host mirror: only its phase within the horizon shapes what is queued
  episode_sums_.zero();
  {  // the chunk's starting hidden state, for BPTT in the update
    const float* h = h_.data();
    float* h0 = h0_buf_.data();
    parallel_for(b_, n * H, [=] DYN_LAMBDA(int64_t i) { h0[i] = h[i]; });
  }
  for (int t = 0; t < T; ++t) {
    const int64_t o = int64_t(t) * n;
    const StepRef step(step_dev_.data(), uint32_t(t));
    uint8_t* reset = reset_buf_.data() + o;
    const uint8_t* start = start_.data();
    parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) { reset[i] = start[i]; });
    obs_norm_.update(obs_.data(), n);
    // the new hidden state replaces the carried one in place
    step_policy(roll_ws_, obs_.data(), prev_a_.data(), prev_r_.data(), start_.data(), h_.data(), n,
                x_buf_.data() + o * kIn, h_.data(), true);
    int32_t* a = act_buf_.data() + o;
    const float* logits = roll_ws_.actor.act.back().data();
    categorical_act(b_, logits, false, env_.seed, step, a, n, kGridActions);
    categorical_log_prob_entropy(b_, logits, a, logp_buf_.data() + o, static_cast<float*>(nullptr), n, kGridActions);
    {
      const float* v = roll_ws_.critic.act.back().data();
      float* vt = val_buf_.data() + o;
      parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) { vt[i] = v[i]; });
    }
    float* r = rew_buf_.data() + o;
    uint8_t* trunc = trunc_buf_.data() + o;
    uint8_t* term = term_buf_.data() + o;
    const GridBatchOut out{obs_.data(), r, send_buf_.data() + o, trunc, term, sid_buf_.data() + o, final_obs_.data()};
    gridworld_step(b_, env_, state_.data(), a, out, n, step);
    // time limit: V of the final observation, one more recurrent step from the carried state
    if ((step0 + uint32_t(t) + 1) % uint32_t(env_.session.horizon) == 0) {
      step_policy(boot_ws_, final_obs_.data(), a, r, no_start_.data(), h_.data(), n, x_extra_.data(), h_next_.data(),
                  true);
      const float* v = boot_ws_.critic.act.back().data();
      float* fv = final_val_buf_.data() + o;
      parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) { fv[i] = v[i]; });
    }
    track_returns(b_, n, cfg_.gamma, r, trunc, term, disc_ret_.data(), disc_buf_.data() + o, ep_ret_.data(),
                  episode_sums_.data());
    // the next step's inputs: this action and reward, or a fresh start after an episode end
    int32_t* pa = prev_a_.data();
    float* pr = prev_r_.data();
    uint8_t* st_next = start_.data();
    parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) {
      pa[i] = a[i];
      pr[i] = r[i];
      st_next[i] = trunc[i] || term[i];
    });
  }
  uint32_t* counter = step_dev_.data();
  parallel_for(b_, 1, [=] DYN_LAMBDA(int64_t) { *counter += uint32_t(T); });
  // V(s_T): a recurrent step on the next observation, without advancing the carried state
  step_policy(boot_ws_, obs_.data(), prev_a_.data(), prev_r_.data(), start_.data(), h_.data(), n, x_extra_.data(),
              h_next_.data(), true);
  {
    const float* v = boot_ws_.critic.act.back().data();
    float* vT = val_buf_.data() + int64_t(T) * n;
    parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) { vT[i] = v[i]; });
  }
  ret_norm_.update(disc_buf_.data(), int64_t(T) * n);
  ret_norm_.scale(rew_buf_.data(), rew_buf_.data(), int64_t(T) * n);
}

void GridRl2::advantages() {
  DYN_NVTX_RANGE("rl2_advantages");
  graphs_.run(kGraphAdvantages, [&] {
    advantages_normalized(b_, cfg_.rollout_steps, n_, rew_buf_.data(), val_buf_.data(), term_buf_.data(),
                          trunc_buf_.data(), final_val_buf_.data(), cfg_.gamma, cfg_.gae_lambda, adv_buf_.data(),
                          ret_buf_.data(), scalars_.data());
  });
}

void GridRl2::update(IterationStats& st) {
  DYN_NVTX_RANGE("rl2_update");
  graphs_.run(kGraphUpdate, [&] {
    draw_shuffles(b_, shuffler_, env_.seed, cfg_.epochs, draws_.data(), env_perm_.data());  // over env sequences
    update_minibatches();
  });
  read_update_stats(term_acc_, cfg_.epochs * cfg_.minibatches, adam_.last_grad_norm(), st);
}

void GridRl2::update_minibatches() {
  const int T = cfg_.rollout_steps;
  const int64_t N = n_, Nm = N / cfg_.minibatches, M = T * Nm, H = shape_.hidden;
  term_acc_.zero();
  float* p = params_.value.data();
  float* g = params_.grad.data();
  for (int epoch = 0; epoch < cfg_.epochs; ++epoch) {
    for (int mb = 0; mb < cfg_.minibatches; ++mb) {
      // gather whole sequences of Nm envs: [T, Nm, ·]
      const int32_t* envs = env_perm_.data() + epoch * N + mb * Nm;
      const float *x = x_buf_.data(), *logp = logp_buf_.data(), *adv = adv_buf_.data(), *ret = ret_buf_.data(),
                  *val = val_buf_.data(), *h0 = h0_buf_.data();
      const uint8_t* reset = reset_buf_.data();
      const int32_t* act = act_buf_.data();
      float *m_x = mb_x_.data(), *m_logp = mb_old_logp_.data(), *m_adv = mb_adv_.data(), *m_ret = mb_ret_.data(),
            *m_v = mb_old_v_.data(), *m_h0 = mb_h0_.data();
      uint8_t* m_reset = mb_reset_.data();
      int32_t* m_act = mb_act_.data();
      parallel_for(b_, M, [=] DYN_LAMBDA(int64_t i) {
        const int64_t t = i / Nm, j = i % Nm, src = t * N + envs[j];
        for (int k = 0; k < kIn; ++k) m_x[i * kIn + k] = x[src * kIn + k];
        m_reset[i] = reset[src];
        m_act[i] = act[src];
        m_logp[i] = logp[src];
        m_adv[i] = adv[src];
        m_ret[i] = ret[src];
        m_v[i] = val[src];
      });
      parallel_for(b_, Nm * H, [=] DYN_LAMBDA(int64_t i) { m_h0[i] = h0[int64_t(envs[i / H]) * H + i % H]; });
      // forward through the embedding, the GRU over T steps, and the heads
      embed_.forward(b_, p, m_x, int(M), embed_ws_);
      gru_.forward(b_, p, embed_ws_.act.back().data(), m_reset, static_cast<const float*>(nullptr), m_h0, T, int(Nm),
                   gru_ws_);
      const float* hs = gru_ws_.h.data();  // [T, Nm, H]
      actor_.forward(b_, p, hs, int(M), actor_ws_);
      critic_.forward(b_, p, hs, int(M), critic_ws_);
      const float* logits = actor_ws_.act.back().data();
      categorical_log_prob_entropy(b_, logits, m_act, mb_logp_.data(), mb_ent_.data(), M, kGridActions);
      ppo_minibatch_terms(b_, M, mb_logp_.data(), m_logp, mb_ent_.data(), m_adv, critic_ws_.act.back().data(), m_v,
                          m_ret, cfg_.clip, cfg_.vf_coef, cfg_.entropy_coef, mb_glogp_.data(), mb_gent_.data(),
                          mb_dv_.data(), mb_terms_.data());
      // backward: heads → d hidden (actor and critic add up) → GRU through time → embedding
      params_.grad.zero();
      mb_dh_.zero();
      categorical_backward(b_, logits, m_act, mb_glogp_.data(), mb_gent_.data(), mb_dlogits_.data(), M, kGridActions);
      actor_.backward(b_, p, g, hs, mb_dlogits_.data(), mb_dh_.data(), actor_ws_, true);
      critic_.backward(b_, p, g, hs, mb_dv_.data(), mb_dh_.data(), critic_ws_, true);
      gru_.backward(b_, p, g, embed_ws_.act.back().data(), m_reset, mb_dh_.data(), 0, mb_dembed_.data(),
                    static_cast<float*>(nullptr), static_cast<float*>(nullptr), gru_ws_);
      embed_.backward(b_, p, g, m_x, mb_dembed_.data(), static_cast<float*>(nullptr), embed_ws_, true);
      adam_.step(p, g);
      accumulate_terms(b_, M, mb_terms_.data(), scalars_.data() + 2, term_acc_.data());
    }
  }
}

IterationStats GridRl2::iterate() { return timed_iteration(*this); }

EvalStats GridRl2::evaluate(int64_t n, int episodes_per_env, uint32_t seed) {
  DYN_NVTX_RANGE("rl2_evaluate");
  GridParams p = env_;
  p.seed = seed;
  const int64_t H = shape_.hidden;
  Buffer<GridState> state(b_, n);
  Buffer<float> obs(b_, n * kGridObsDim), reward(b_, n), ep(b_, n), h(b_, n * H), x(b_, n * kIn);
  Buffer<uint8_t> send(b_, n), trunc(b_, n), term(b_, n), start(b_, n);
  Buffer<int32_t> sid(b_, n), act(b_, n), prev_a(b_, n);
  Buffer<double> sums(b_, 3 * n);
  for (Buffer<float>* buf : {&ep, &h, &reward}) buf->zero();
  sums.zero();
  prev_a.zero();
  start.from_host(std::vector<uint8_t>(n, 1));
  Rl2StepWorkspaces ws;
  gridworld_reset(b_, p, state.data(), obs.data(), n, 0);
  const GridBatchOut out{obs.data(), reward.data(), send.data(), trunc.data(), term.data(), sid.data(), nullptr};
  const int64_t steps = int64_t(episodes_per_env) * p.session.horizon;
  for (int64_t t = 0; t < steps; ++t) {
    step_policy(ws, obs.data(), prev_a.data(), reward.data(), start.data(), h.data(), n, x.data(), h.data(), false);
    categorical_act(b_, ws.actor.act.back().data(), true, seed, uint32_t(t), act.data(), n, kGridActions);
    gridworld_step(b_, p, state.data(), act.data(), out, n, uint32_t(t));
    // the next step's inputs, then the returns
    const uint8_t* done = trunc.data();
    uint8_t* st = start.data();
    int32_t *pa = prev_a.data(), *a = act.data();
    parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) {
      pa[i] = a[i];
      st[i] = done[i];
    });
    track_eval_returns(b_, n, reward.data(), done, ep.data(), sums.data());
  }
  return eval_stats(sums, n);
}

}  // namespace dyn
