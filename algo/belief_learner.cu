// DynaMITE-RL / VariBAD on the gridworld: online beliefs in the rollout, the episode replay, belief updates.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "algo/belief_learner.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "kernels/reduce.h"

namespace dyn {

void GridBelief::EpisodeArrays::allocate(Backend b, int64_t episodes, int horizon) {
  const int64_t H = horizon;
  obs = Buffer<float>(b, episodes * (H + 1) * kGridObsDim);
  land = Buffer<float>(b, episodes * H * kGridObsDim);
  rew = Buffer<float>(b, episodes * H);
  act = Buffer<int32_t>(b, episodes * H);
  sid = Buffer<int32_t>(b, episodes * H);
  send = Buffer<uint8_t>(b, episodes * H);
}

GridBelief::GridBelief(Backend b, const GridParams& env, int64_t n_envs, const PpoConfig& cfg, const BeliefConfig& bc)
    : b_(b),
      env_(env),
      n_(n_envs),
      cfg_(cfg),
      bc_(bc),
      H_(env.session.horizon),
      d_(bc.shape.latent),
      in_dim_(kGridObsDim + 2 * bc.shape.latent),
      core_(b, kGridObsDim + 2 * bc.shape.latent, kGridActions, n_envs, cfg, env.seed),
      in_norm_(b, kGridObsDim + 2 * bc.shape.latent),
      model_(b, bc.shape, blayout_),
      bparams_(b, blayout_, env.seed ^ 0x5eedu),
      badam_(b, blayout_.total(), bc.adam),
      sample_rng_(env.seed),
      graphs_(b, cfg.cuda_graphs),
      step_dev_(b, 1) {
  if (cfg.rollout_steps % H_ != 0 && H_ % cfg.rollout_steps != 0)
    throw std::invalid_argument("belief learners need rollout_steps and the horizon to divide one another; got " +
                                std::to_string(cfg.rollout_steps) + " and " + std::to_string(H_));
  const int64_t N = n_, Hd = bc.shape.hidden, C = bc.replay_episodes, B = bc.batch_episodes;
  state_ = Buffer<GridState>(b, N);
  obs_ = Buffer<float>(b, N * kGridObsDim);
  final_obs_ = Buffer<float>(b, N * kGridObsDim);
  for (Buffer<uint8_t>* buf : {&send_, &send_prev_, &start_, &close_, &no_start_}) *buf = Buffer<uint8_t>(b, N);
  sid_ = Buffer<int32_t>(b, N);
  prev_a_ = Buffer<int32_t>(b, N);
  prev_r_ = Buffer<float>(b, N);
  h_ = Buffer<float>(b, N * Hd);
  h_scratch_ = Buffer<float>(b, N * Hd);
  cond_ = Buffer<float>(b, N * 2 * d_);
  raw_ = Buffer<float>(b, N * in_dim_);
  term_counts_ = Buffer<double>(b, 3);
  ep_.allocate(b, N, H_);
  rp_.allocate(b, C, H_);
  rp_head_ = Buffer<int32_t>(b, 1);
  pick_ = Buffer<int32_t>(b, B);
  bt_.allocate(b, B, H_);
  lws_.eps = Buffer<float>(b, (H_ + 1) * B * d_);
  for (Buffer<float>* buf : {&prev_r_, &h_, &cond_}) buf->zero();
  for (Buffer<uint8_t>* buf : {&send_prev_, &close_, &no_start_}) buf->zero();
  prev_a_.zero();
  rp_head_.zero();
  step_dev_.zero();
  start_.from_host(std::vector<uint8_t>(N, 1));
  gridworld_reset(b_, env_, state_.data(), obs_.data(), N, 0);
}

void GridBelief::encode_step(EncoderWorkspace<float>& ws, const float* obs, const int32_t* prev_a, const float* prev_r,
                             const uint8_t* start, const float* cond, const float* h, int64_t n, float* h_out,
                             float* raw) {
  const float* p = bparams_.value.data();
  model_.encode(p, obs, prev_a, prev_r, start, cond, h, 1, int(n), ws);
  const float* hn = ws.gru.h.data();  // the GRU has read h: h_out may alias it
  parallel_for(b_, n * bc_.shape.hidden, [=] DYN_LAMBDA(int64_t i) { h_out[i] = hn[i]; });
  // the policy's raw input [s, μ, log σ²]; the belief is data for the policy (no gradient flows back)
  const float* q = BeliefModel<float>::q(ws);
  const int d = d_, D = in_dim_, qw = 2 * d_ + 1;
  parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) {
    for (int k = 0; k < kGridObsDim; ++k) raw[i * D + k] = obs[i * kGridObsDim + k];
    for (int k = 0; k < 2 * d; ++k) raw[i * D + kGridObsDim + k] = q[i * qw + k];
  });
}

void GridBelief::close_sessions(const float* q, const uint8_t* start, const uint8_t* send_prev, int64_t n,
                                uint8_t* close, float* cond, double* counts) {
  const bool oracle = bc_.oracle_sessions;
  const int d = d_, qw = 2 * d_ + 1;
  parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) {
    const bool predicted = !start[i] && q[i * qw + 2 * d] > 0.0f;  // σ(logit) > ½
    const bool truth = !start[i] && send_prev[i];
    close[i] = oracle ? truth : predicted;
    if (counts) {  // precision / recall of the head's prediction, whatever closes the session
      if (predicted && truth) atomic_add_hd(counts + 0, 1.0);
      if (predicted && !truth) atomic_add_hd(counts + 1, 1.0);
      if (!predicted && truth) atomic_add_hd(counts + 2, 1.0);
    }
  });
  if (bc_.shape.conditioning) carry_final_belief(b_, q, close, n, d_, cond);
}

void GridBelief::collect(IterationStats& st) {
  DYN_NVTX_RANGE("belief_collect");
  graphs_.run(step_ % uint32_t(H_), [&] { collect_steps(); });
  const int T = cfg_.rollout_steps;
  for (int t = 0; t < T; ++t)  // host mirror of the ring: which collect steps pushed episodes
    if ((step_ + uint32_t(t) + 1) % uint32_t(H_) == 0) {
      pushed_ += n_;
      replay_count_ = std::min<int64_t>(pushed_, bc_.replay_episodes);
    }
  step_ += uint32_t(T);
  frames_ += int64_t(T) * n_;
  st.train_return = core_.rollout_return(&st.episodes);
  const std::vector<double> c = term_counts_.to_host();
  st.extra.emplace_back("term_precision", c[0] + c[1] > 0 ? c[0] / (c[0] + c[1]) : std::nan(""));
  st.extra.emplace_back("term_recall", c[0] + c[2] > 0 ? c[0] / (c[0] + c[2]) : std::nan(""));
}

void GridBelief::collect_steps() {
  const int T = cfg_.rollout_steps;
  const int64_t n = n_;
  const uint32_t step0 = step_;
  core_.begin_rollout();
  term_counts_.zero();
  for (int t = 0; t < T; ++t) {
    const StepRef step(step_dev_.data(), uint32_t(t));
    const int k = int((step0 + uint32_t(t)) % uint32_t(H_));  // index within the episode
    // the encoder's input is saved for the replay before the step
    {
      float* eo = ep_.obs.data() + int64_t(k) * n * kGridObsDim;
      const float* o = obs_.data();
      parallel_for(b_, n * kGridObsDim, [=] DYN_LAMBDA(int64_t i) { eo[i] = o[i]; });
    }
    // belief q_t from (s_t, a_{t−1}, r_{t−1}) and the carried state; a predicted (or true) session end
    // closes the session and carries its final belief into the conditioning input
    encode_step(roll_enc_, obs_.data(), prev_a_.data(), prev_r_.data(), start_.data(), cond_.data(), h_.data(), n,
                h_.data(), raw_.data());
    close_sessions(BeliefModel<float>::q(roll_enc_), start_.data(), send_prev_.data(), n, close_.data(), cond_.data(),
                   term_counts_.data());
    if (q_trace_) {  // tests: the rollout's beliefs, [T, N, 2d+1]
      const float* q = BeliefModel<float>::q(roll_enc_);
      float* tr = q_trace_ + int64_t(t) * n * (2 * d_ + 1);
      parallel_for(b_, n * (2 * d_ + 1), [=] DYN_LAMBDA(int64_t i) { tr[i] = q[i]; });
    }
    float* in = core_.input(t);
    in_norm_.update(raw_.data(), n);
    in_norm_.normalize(raw_.data(), in, n);
    int32_t* a = core_.action(t);
    core_.act(roll_ws_, in, n, false, env_.seed, step, a, core_.log_prob(t), core_.value(t));
    float* r = core_.reward(t);
    uint8_t *trunc = core_.truncated(t), *term = core_.terminated(t);
    const GridBatchOut out{obs_.data(), r, send_.data(), trunc, term, sid_.data(), final_obs_.data()};
    gridworld_step(b_, env_, state_.data(), a, out, n, step);
    {  // the transition into the episode being assembled
      const int64_t o = int64_t(k) * n;
      float *er = ep_.rew.data() + o, *el = ep_.land.data() + o * kGridObsDim;
      int32_t *eact = ep_.act.data() + o, *esid = ep_.sid.data() + o;
      uint8_t* esend = ep_.send.data() + o;
      const float* fo = final_obs_.data();
      const int32_t* sid = sid_.data();
      const uint8_t* send = send_.data();
      parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) {
        eact[i] = a[i];
        er[i] = r[i];
        esid[i] = sid[i];
        esend[i] = send[i];
        for (int c = 0; c < kGridObsDim; ++c) el[i * kGridObsDim + c] = fo[i * kGridObsDim + c];
      });
    }
    if (k == H_ - 1) {  // time limit: the episode is complete
      float* last = ep_.obs.data() + int64_t(H_) * n * kGridObsDim;
      const float* fo = final_obs_.data();
      parallel_for(b_, n * kGridObsDim, [=] DYN_LAMBDA(int64_t i) { last[i] = fo[i]; });
      push_episodes();
      // bootstrap: V at the final observation with the belief after the final transition (one more encoder step
      // from the carried state, which is not advanced)
      float* raw = raw_.data();
      encode_step(boot_enc_, final_obs_.data(), a, r, no_start_.data(), cond_.data(), h_.data(), n, h_scratch_.data(),
                  raw);
      in_norm_.normalize(raw, raw, n);
      core_.values(roll_ws_, raw, n, core_.final_value(t));
    }
    core_.track_step(t);
    // the next step's inputs: this action and reward, or a fresh start (belief and conditioning reset)
    int32_t* pa = prev_a_.data();
    float *pr = prev_r_.data(), *cond = cond_.data();
    uint8_t *st = start_.data(), *sp = send_prev_.data();
    const uint8_t* send = send_.data();
    const int C = 2 * d_;
    parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) {
      const bool done = trunc[i] || term[i];
      pa[i] = a[i];
      pr[i] = r[i];
      st[i] = done;
      sp[i] = send[i];
      if (done)
        for (int c = 0; c < C; ++c) cond[i * C + c] = 0.0f;
    });
  }
  uint32_t* counter = step_dev_.data();
  parallel_for(b_, 1, [=] DYN_LAMBDA(int64_t) { *counter += uint32_t(T); });
  // V(s_T): the belief at the next observation, without advancing the carried state
  float* raw = raw_.data();
  encode_step(boot_enc_, obs_.data(), prev_a_.data(), prev_r_.data(), start_.data(), cond_.data(), h_.data(), n,
              h_scratch_.data(), raw);
  in_norm_.normalize(raw, raw, n);
  core_.values(roll_ws_, raw, n, core_.value(T));
  core_.finish_rollout();
}

void GridBelief::push_episodes() {
  // slot of env i = (head + i) mod C; the head lives on the backend so a graph replay advances it
  const int64_t n = n_, C = bc_.replay_episodes, H = H_;
  const float *eo = ep_.obs.data(), *el = ep_.land.data(), *er = ep_.rew.data();
  const int32_t *ea = ep_.act.data(), *es = ep_.sid.data();
  const uint8_t* ed = ep_.send.data();
  float *ro = rp_.obs.data(), *rl = rp_.land.data(), *rr = rp_.rew.data();
  int32_t *ra = rp_.act.data(), *rs = rp_.sid.data(), *head = rp_head_.data();
  uint8_t* rd = rp_.send.data();
  // one item per (step, env), time-major like the assembled episodes: reads are contiguous across envs
  parallel_for(b_, (H + 1) * n, [=] DYN_LAMBDA(int64_t k) {
    const int64_t t = k / n, i = k % n, slot = (head[0] + i) % C;
    for (int c = 0; c < kGridObsDim; ++c) ro[(slot * (H + 1) + t) * kGridObsDim + c] = eo[k * kGridObsDim + c];
    if (t == H) return;  // the final observation has no transition
    for (int c = 0; c < kGridObsDim; ++c) rl[(slot * H + t) * kGridObsDim + c] = el[k * kGridObsDim + c];
    rr[slot * H + t] = er[k];
    ra[slot * H + t] = ea[k];
    rs[slot * H + t] = es[k];
    rd[slot * H + t] = ed[k];
  });
  parallel_for(b_, 1, [=] DYN_LAMBDA(int64_t) { head[0] = int32_t((head[0] + n) % C); });
}

void GridBelief::update(IterationStats& st) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  core_.update(st);  // ends with a read of the loss statistics: the backend is idle here
  const auto t1 = clock::now();
  DYN_NVTX_RANGE("belief_update");
  double acc[5] = {0, 0, 0, 0, 0};
  int steps = 0;
  if (replay_count_ >= bc_.batch_episodes)
    for (; steps < bc_.updates_per_iteration; ++steps) belief_step(acc);
  synchronize(b_);
  const char* names[5] = {"belief_loss", "belief_recon", "belief_kl", "belief_consistency", "belief_bce"};
  for (int k = 0; k < 5; ++k) st.extra.emplace_back(names[k], steps > 0 ? acc[k] / steps : std::nan(""));
  // where the update's time goes: PPO's minibatches, then the belief steps
  st.extra.emplace_back("ppo_update_s", std::chrono::duration<double>(t1 - t0).count());
  st.extra.emplace_back("belief_update_s", std::chrono::duration<double>(clock::now() - t1).count());
}

void GridBelief::belief_step(double* acc) {
  const int B = bc_.batch_episodes, H = H_;
  // B distinct episodes, uniformly from the filled part of the ring
  std::vector<int32_t> slots(static_cast<size_t>(replay_count_));
  std::iota(slots.begin(), slots.end(), 0);
  for (size_t i = 0; i < size_t(B); ++i) {  // partial Fisher–Yates
    std::uniform_int_distribution<size_t> pick(i, slots.size() - 1);
    std::swap(slots[i], slots[pick(sample_rng_)]);
  }
  slots.resize(size_t(B));
  const EpisodeBatchView<float> ep = gather_episodes(slots);
  const DecodePlan plan = plan_decodes(bt_.sid.to_host(), H, B, bc_.loss.session_recon);
  const float* p = bparams_.value.data();
  draw_belief_noise(b_, env_.seed, belief_steps_++, int64_t(H + 1) * B * d_, lws_.eps.data());
  bparams_.grad.zero();
  const BeliefLossStats s = belief_loss<float>(model_, p, bparams_.grad.data(), ep, plan, bc_.loss, nullptr, lws_);
  badam_.step(bparams_.value.data(), bparams_.grad.data());
  acc[0] += s.total;
  acc[1] += s.recon;
  acc[2] += s.kl;
  acc[3] += s.consistency;
  acc[4] += s.bce;
}

EpisodeBatchView<float> GridBelief::gather_episodes(const std::vector<int32_t>& slots) {
  const int B = int(slots.size()), H = H_;
  if (B > bc_.batch_episodes) throw std::invalid_argument("gather_episodes: more slots than belief.batch_episodes");
  if (pick_.size() != slots.size()) pick_ = Buffer<int32_t>(b_, slots.size());
  pick_.from_host(slots);
  {  // gather them time-major: [T(+1), B, ·]
    const int32_t* pick = pick_.data();
    const float *ro = rp_.obs.data(), *rl = rp_.land.data(), *rr = rp_.rew.data();
    const int32_t *ra = rp_.act.data(), *rs = rp_.sid.data();
    const uint8_t* rd = rp_.send.data();
    float *bo = bt_.obs.data(), *bl = bt_.land.data(), *br = bt_.rew.data();
    int32_t *ba = bt_.act.data(), *bs = bt_.sid.data();
    uint8_t* bd = bt_.send.data();
    parallel_for(b_, int64_t(H + 1) * B, [=] DYN_LAMBDA(int64_t i) {
      const int64_t t = i / B, e = i % B, slot = pick[e];
      for (int c = 0; c < kGridObsDim; ++c) bo[i * kGridObsDim + c] = ro[(slot * (H + 1) + t) * kGridObsDim + c];
      if (t < H) {
        for (int c = 0; c < kGridObsDim; ++c) bl[i * kGridObsDim + c] = rl[(slot * H + t) * kGridObsDim + c];
        br[i] = rr[slot * H + t];
        ba[i] = ra[slot * H + t];
        bs[i] = rs[slot * H + t];
        bd[i] = rd[slot * H + t];
      }
    });
  }
  return EpisodeBatchView<float>{
      H, B, bt_.obs.data(), bt_.act.data(), bt_.rew.data(), bt_.sid.data(), bt_.send.data(), bt_.land.data()};
}

IterationStats GridBelief::iterate() { return timed_iteration(*this); }

EvalStats GridBelief::evaluate(int64_t n, int episodes_per_env, uint32_t seed) {
  DYN_NVTX_RANGE("belief_evaluate");
  GridParams p = env_;
  p.seed = seed;
  const int64_t Hd = bc_.shape.hidden, D = in_dim_, C = 2 * d_;
  Buffer<GridState> state(b_, n);
  Buffer<float> obs(b_, n * kGridObsDim), reward(b_, n), ep(b_, n), h(b_, n * Hd), cond(b_, n * C), raw(b_, n * D),
      in(b_, n * D);
  Buffer<uint8_t> send(b_, n), send_prev(b_, n), trunc(b_, n), term(b_, n), start(b_, n), close(b_, n);
  Buffer<int32_t> sid(b_, n), act(b_, n), prev_a(b_, n);
  Buffer<double> sums(b_, 3 * n), goal_hits(b_, 2), goal_hit(b_, n), goal_hit_sum(b_, 1);
  Buffer<float> dec_in(b_, 2 * n * bc_.shape.decoder_in());
  for (Buffer<float>* buf : {&ep, &h, &reward, &cond}) buf->zero();
  sums.zero();
  goal_hits.zero();
  prev_a.zero();
  send_prev.zero();
  start.from_host(std::vector<uint8_t>(n, 1));
  EncoderWorkspace<float> enc;
  HeadWorkspaces heads;
  MlpWorkspace<float> dec_ws;
  gridworld_reset(b_, p, state.data(), obs.data(), n, 0);
  const GridBatchOut out{obs.data(), reward.data(), send.data(), trunc.data(), term.data(), sid.data(), nullptr};
  const int64_t steps = int64_t(episodes_per_env) * p.session.horizon;
  const int d = d_, DI = bc_.shape.decoder_in(), qw = 2 * d_ + 1;
  for (int64_t t = 0; t < steps; ++t) {
    encode_step(enc, obs.data(), prev_a.data(), reward.data(), start.data(), cond.data(), h.data(), n, h.data(),
                raw.data());
    const float* q = BeliefModel<float>::q(enc);
    close_sessions(q, start.data(), send_prev.data(), n, close.data(), cond.data(), static_cast<double*>(nullptr));
    {  // belief quality: does the reward decoder, at the belief's mean, rank the rewarding goal first?
      const GridState* s = state.data();
      const float* o = obs.data();
      float* x = dec_in.data();
      parallel_for(b_, 2 * n, [=] DYN_LAMBDA(int64_t r) {
        const int64_t i = r / 2;
        const int g = int(r % 2);
        float* row = x + r * DI;
        // the transition "stand on goal g and stay": s = s' = the agent on g, action stay
        float* from = row + d;
        float* land = row + d + kGridObsDim + kGridActions;
        constexpr float kScale = 1.0f / float(kGridSize - 1);
        for (int k = 0; k < d; ++k) row[k] = q[i * qw + k];
        for (int k = 0; k < kGridActions; ++k) row[d + kGridObsDim + k] = k == kStay ? 1.0f : 0.0f;
        for (float* cell : {from, land}) {
          cell[0] = s[i].gx[g] * kScale;
          cell[1] = s[i].gy[g] * kScale;
          for (int k = 2; k < kGridObsDim; ++k) cell[k] = o[i * kGridObsDim + k];
        }
      });
      model_.decoder.forward(b_, bparams_.value.data(), x, int(2 * n), dec_ws);
      // hit[i] = the decoder ranks env i's rewarding goal first; their sum by a reduction, added to goal_hits
      const float* rhat = dec_ws.act.back().data();
      double* hit = goal_hit.data();
      parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) {
        hit[i] = (rhat[2 * i + 1] > rhat[2 * i]) == (s[i].goal == 1) ? 1.0 : 0.0;
      });
      reduce_sum(b_, goal_hit.data(), size_t(n), goal_hit_sum.data());
      double *hits = goal_hits.data(), *sum = goal_hit_sum.data();
      parallel_for(b_, 1, [=] DYN_LAMBDA(int64_t) {
        hits[0] += sum[0];
        hits[1] += double(n);
      });
    }
    in_norm_.normalize(raw.data(), in.data(), n);
    core_.act(heads, in.data(), n, true, seed, uint32_t(t), act.data(), nullptr, nullptr);
    gridworld_step(b_, p, state.data(), act.data(), out, n, uint32_t(t));
    const uint8_t *done = trunc.data(), *sd = send.data();
    uint8_t *st = start.data(), *sp = send_prev.data();
    int32_t *pa = prev_a.data(), *a = act.data();
    float* cd = cond.data();
    const int Cn = int(C);
    parallel_for(b_, n, [=] DYN_LAMBDA(int64_t i) {
      pa[i] = a[i];
      st[i] = done[i];
      sp[i] = sd[i];
      if (done[i])
        for (int c = 0; c < Cn; ++c) cd[i * Cn + c] = 0.0f;
    });
    track_eval_returns(b_, n, reward.data(), done, ep.data(), sums.data());
  }
  const std::vector<double> hits = goal_hits.to_host();
  goal_accuracy_ = hits[1] > 0 ? hits[0] / hits[1] : 0.0;
  return eval_stats(sums, n);
}

}  // namespace dyn
