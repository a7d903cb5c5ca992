// The belief model: encoder forward/backward, the online session bookkeeping, the decode plan and the belief loss
// (reconstruction over a flat list of (latent, transition) pairs through one batched decoder pass, then the
// per-trajectory KL / consistency / BCE row function of nn/belief_terms.h).
#include <stdexcept>

#include "algo/belief_model.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "kernels/philox.h"
#include "kernels/reduce.h"

namespace dyn {

namespace {

template <class T>
void ensure(Buffer<T>& buf, Backend b, size_t n) {
  if (buf.size() < n || buf.backend() != b || buf.data() == nullptr) buf = Buffer<T>(b, n < 1 ? 1 : n);
}

template <class T>
void upload(Buffer<T>& buf, Backend b, const std::vector<T>& v) {
  if (buf.size() != v.size() || buf.backend() != b) buf = Buffer<T>(b, v.size());
  buf.from_host(v);
}

// The encoder's per-latent inputs of whole episodes, [T+1, B]: latent t sees a_{t−1} and r_{t−1}; t = 0 starts.
template <class T>
void episode_inputs(Backend b, const EpisodeBatchView<T>& ep, BeliefLossWorkspace<T>& ws) {
  const int B = ep.batch;
  const int64_t R = int64_t(ep.steps + 1) * B;
  ensure(ws.prev_a, b, size_t(R));
  ensure(ws.prev_r, b, size_t(R));
  ensure(ws.start, b, size_t(R));
  int32_t* pa = ws.prev_a.data();
  T* pr = ws.prev_r.data();
  uint8_t* st = ws.start.data();
  const int32_t* act = ep.act;
  const T* rew = ep.rew;
  parallel_for(b, R, [=] DYN_LAMBDA(int64_t i) {
    const bool first = i < B;
    pa[i] = first ? 0 : act[i - B];
    pr[i] = first ? T(0) : rew[i - B];
    st[i] = first ? 1 : 0;
  });
}

// Columns [c0, c0 + w) of src [rows, src_w] into dst [rows, w] (or back, with add into dst when `into_src`).
template <class T>
struct CopyColumns {
  const T* src;
  T* dst;
  int64_t src_w, c0, w;
  DYN_HD void operator()(int64_t r, int64_t c) const { dst[r * w + c] = src[r * src_w + c0 + c]; }
};
template <class T>
struct PlaceColumns {
  const T* src;
  T* dst;
  int64_t dst_w, c0, w;
  DYN_HD void operator()(int64_t r, int64_t c) const { dst[r * dst_w + c0 + c] = src[r * w + c]; }
};

}  // namespace

template <class T>
BeliefModel<T>::BeliefModel(Backend b, const BeliefShape& s, ParamLayout& layout) : b_(b), s_(s) {
  const int d = s.latent;
  emb_s = Mlp({{s.obs, s.embed}, Activation::relu, Activation::relu}, layout, "belief.enc.emb_s");
  emb_a = Mlp({{s.actions, s.embed}, Activation::relu, Activation::relu}, layout, "belief.enc.emb_a");
  emb_r = Mlp({{1, s.embed}, Activation::relu, Activation::relu}, layout, "belief.enc.emb_r");
  trunk = Mlp({{s.trunk_in(), s.trunk, s.trunk}, Activation::relu, Activation::relu}, layout, "belief.enc.trunk");
  gru = Gru(s.trunk, s.hidden, layout, "belief.enc.gru");
  heads = Mlp({{s.hidden, s.head_out()}}, layout, "belief.enc.heads", 1.0, 1.0);
  prior = Mlp({{2 * d, s.prior_hidden, 2 * d}}, layout, "belief.prior");
  decoder = Mlp({{s.decoder_in(), s.decoder_hidden, s.decoder_hidden, 1}}, layout, "belief.dec");
}

template <class T>
void BeliefModel<T>::encode(const T* params, const T* obs, const int32_t* prev_a, const T* prev_r, const uint8_t* start,
                            const T* cond, const T* h0, int steps, int batch, EncoderWorkspace<T>& ws) const {
  DYN_NVTX_RANGE("belief_encode");
  const int64_t R = int64_t(steps) * batch;
  const int O = s_.obs, A = s_.actions, E = s_.embed, C = s_.cond_dim(), W = s_.trunk_in();
  ws.rows = int(R);
  ensure(ws.xs, b_, R * O);
  ensure(ws.xa, b_, R * A);
  ensure(ws.xr, b_, R);
  ensure(ws.trunk_in, b_, R * W);
  ensure(ws.reset, b_, R);
  T *xs = ws.xs.data(), *xa = ws.xa.data(), *xr = ws.xr.data();
  uint8_t* reset = ws.reset.data();
  parallel_for(b_, R, [=] DYN_LAMBDA(int64_t i) {
    for (int k = 0; k < O; ++k) xs[i * O + k] = obs[i * O + k];
    for (int k = 0; k < A; ++k) xa[i * A + k] = (!start[i] && prev_a[i] == k) ? T(1) : T(0);
    xr[i] = start[i] ? T(0) : prev_r[i];
    reset[i] = start[i];
  });
  emb_s.forward(b_, params, xs, int(R), ws.es);
  emb_a.forward(b_, params, xa, int(R), ws.ea);
  emb_r.forward(b_, params, xr, int(R), ws.er);
  T* tin = ws.trunk_in.data();
  parallel_for_2d(b_, R, E, PlaceColumns<T>{ws.es.act.back().data(), tin, W, 0, E});
  parallel_for_2d(b_, R, E, PlaceColumns<T>{ws.ea.act.back().data(), tin, W, E, E});
  parallel_for_2d(b_, R, E, PlaceColumns<T>{ws.er.act.back().data(), tin, W, 2 * E, E});
  if (C > 0) parallel_for_2d(b_, R, C, PlaceColumns<T>{cond, tin, W, 3 * E, C});
  trunk.forward(b_, params, tin, int(R), ws.trunk);
  gru.forward(b_, params, ws.trunk.act.back().data(), reset, static_cast<const T*>(nullptr), h0, steps, batch, ws.gru);
  heads.forward(b_, params, ws.gru.h.data(), int(R), ws.heads);
}

template <class T>
void BeliefModel<T>::encode_backward(const T* params, T* grads, const T* dq, EncoderWorkspace<T>& ws) const {
  DYN_NVTX_RANGE("belief_encode_backward");
  const int64_t R = ws.rows;
  const int E = s_.embed, W = s_.trunk_in(), H = s_.hidden;
  ensure(ws.dh, b_, R * H);
  ensure(ws.d_trunk_in, b_, R * W);
  for (Buffer<T>* buf : {&ws.d_es, &ws.d_ea, &ws.d_er}) ensure(*buf, b_, R * E);
  ws.dh.zero();
  heads.backward(b_, params, grads, ws.gru.h.data(), dq, ws.dh.data(), ws.heads, true);
  // the GRU's input gradient (written, not added) is the trunk's output gradient
  ensure(ws.d_gru_in, b_, R * s_.trunk);
  gru.backward(b_, params, grads, ws.trunk.act.back().data(), ws.reset.data(), ws.dh.data(), 0, ws.d_gru_in.data(),
               static_cast<T*>(nullptr), static_cast<T*>(nullptr), ws.gru);
  ws.d_trunk_in.zero();
  trunk.backward(b_, params, grads, ws.trunk_in.data(), ws.d_gru_in.data(), ws.d_trunk_in.data(), ws.trunk, true);
  const T* dti = ws.d_trunk_in.data();
  parallel_for_2d(b_, R, E, CopyColumns<T>{dti, ws.d_es.data(), W, 0, E});
  parallel_for_2d(b_, R, E, CopyColumns<T>{dti, ws.d_ea.data(), W, E, E});
  parallel_for_2d(b_, R, E, CopyColumns<T>{dti, ws.d_er.data(), W, 2 * E, E});
  emb_s.backward(b_, params, grads, ws.xs.data(), ws.d_es.data(), static_cast<T*>(nullptr), ws.es, true);
  emb_a.backward(b_, params, grads, ws.xa.data(), ws.d_ea.data(), static_cast<T*>(nullptr), ws.ea, true);
  emb_r.backward(b_, params, grads, ws.xr.data(), ws.d_er.data(), static_cast<T*>(nullptr), ws.er, true);
}

template <class T>
void draw_belief_noise(Backend b, uint32_t seed, uint32_t step, int64_t n, T* eps) {
  parallel_for(b, n,
               [=] DYN_LAMBDA(int64_t i) { eps[i] = T(Philox(seed, kStreamBelief, uint32_t(i), step).normal()); });
}

template <class T>
void carry_final_belief(Backend b, const T* q, const uint8_t* close, int64_t n, int latent, T* cond) {
  const int d2 = 2 * latent, qw = 2 * latent + 1;
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) {
    if (close[i])
      for (int k = 0; k < d2; ++k) cond[i * d2 + k] = q[i * qw + k];
  });
}

template <class T>
void predicted_session_ends(Backend b, const T* q, int64_t n, int latent, uint8_t* close) {
  const int qw = 2 * latent + 1;
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) { close[i] = q[i * qw + 2 * latent] > T(0); });  // σ(x) > ½
}

DecodePlan plan_decodes(const std::vector<int32_t>& sid, int steps, int batch, bool session_recon) {
  if (sid.size() != size_t(steps) * batch) throw std::invalid_argument("plan_decodes: sid must be [T, B]");
  const int T1 = steps + 1;
  DecodePlan p;
  p.lo.resize(size_t(T1) * batch);
  p.offset.resize(size_t(T1) * batch + 1);
  std::vector<int32_t> first(steps), last(steps);  // per transition: its session's range
  for (int b = 0; b < batch; ++b) {
    for (int j = 0; j < steps; ++j)
      first[j] = (j > 0 && sid[size_t(j) * batch + b] == sid[size_t(j - 1) * batch + b]) ? first[j - 1] : j;
    for (int j = steps - 1; j >= 0; --j)
      last[j] = (j + 1 < steps && sid[size_t(j) * batch + b] == sid[size_t(j + 1) * batch + b]) ? last[j + 1] : j;
    for (int t = 0; t < T1; ++t) {
      const int j = t == 0 ? 0 : t - 1;  // the transition whose session latent t belongs to
      const size_t i = size_t(t) * batch + b;
      p.lo[i] = session_recon ? first[j] : 0;
      p.offset[i] = (session_recon ? last[j] + 1 : steps) - p.lo[i];  // count for now
      if (t < steps && sid[size_t(t == 0 ? 0 : t - 1) * batch + b] == sid[size_t(t) * batch + b])
        ++p.consistency_pairs;  // latents t and t + 1 share a session
    }
  }
  int64_t acc = 0;  // counts → exclusive offsets over the row order t·B + b
  for (size_t i = 0; i < size_t(T1) * batch; ++i) {
    const int64_t c = p.offset[i];
    p.offset[i] = int32_t(acc);
    acc += c;
  }
  p.offset.back() = int32_t(acc);
  p.pairs = acc;
  return p;
}

template <class T>
void ground_truth_conditioning(const BeliefModel<T>& m, const T* params, const EpisodeBatchView<T>& ep,
                               BeliefLossWorkspace<T>& ws) {
  DYN_NVTX_RANGE("belief_gt_conditioning");
  const Backend b = m.backend();
  const BeliefShape& s = m.shape();
  const int B = ep.batch, T1 = ep.steps + 1, d2 = 2 * s.latent;
  ensure(ws.cond, b, size_t(T1) * B * d2);
  ws.cond.zero();
  if (!s.conditioning) return;
  episode_inputs(b, ep, ws);
  ensure(ws.gt_h, b, size_t(B) * s.hidden);
  ensure(ws.gt_cond, b, size_t(B) * d2);
  Buffer<T>&h = ws.gt_h, &cond = ws.gt_cond;
  EncoderWorkspace<T>& step_ws = ws.gt_enc;
  h.zero();
  cond.zero();
  for (int t = 0; t < T1; ++t) {
    const int64_t o = int64_t(t) * B;
    T* c_all = ws.cond.data() + o * d2;
    const T* c = cond.data();
    parallel_for(b, int64_t(B) * d2, [=] DYN_LAMBDA(int64_t i) { c_all[i] = c[i]; });
    m.encode(params, ep.obs + o * s.obs, ws.prev_a.data() + o, ws.prev_r.data() + o, ws.start.data() + o, c_all,
             h.data(), 1, B, step_ws);
    T* hn = h.data();
    const T* hs = step_ws.gru.h.data();
    parallel_for(b, int64_t(B) * s.hidden, [=] DYN_LAMBDA(int64_t i) { hn[i] = hs[i]; });
    // latent t closes its session where transition t − 1 was the session's last
    if (t >= 1) {
      const uint8_t* send = ep.send + int64_t(t - 1) * B;
      carry_final_belief(b, BeliefModel<T>::q(step_ws), send, B, s.latent, cond.data());
    }
  }
}

template <class T>
BeliefLossStats belief_loss(const BeliefModel<T>& m, const T* params, T* grads, const EpisodeBatchView<T>& ep,
                            const DecodePlan& plan, const BeliefLossConfig& cfg, BeliefLossWorkspace<T>& ws) {
  DYN_NVTX_RANGE("belief_loss");
  const Backend b = m.backend();
  const BeliefShape& s = m.shape();
  const int B = ep.batch, steps = ep.steps, T1 = steps + 1, d = s.latent, O = s.obs, A = s.actions;
  const int qw = 2 * d + 1, DI = s.decoder_in();
  const int64_t R = int64_t(T1) * B, P = plan.pairs;
  if (ws.eps.size() < size_t(R) * d) throw std::invalid_argument("belief_loss: ws.eps must hold [T+1, B, d] noise");
  if (s.conditioning && ws.cond.size() < size_t(R) * 2 * d)
    throw std::invalid_argument("belief_loss: ws.cond must hold the conditioning inputs [T+1, B, 2d]");
  episode_inputs(b, ep, ws);
  // 1. encoder over the whole episodes (cond: the caller's conditioning inputs)
  const T* cond = s.conditioning ? ws.cond.data() : static_cast<const T*>(nullptr);
  m.encode(params, ep.obs, ws.prev_a.data(), ws.prev_r.data(), ws.start.data(), cond, static_cast<const T*>(nullptr),
           T1, B, ws.enc);
  const T* q = BeliefModel<T>::q(ws.enc);  // [R, 2d+1]
  // 2. the learned prior of every posterior, and one reparameterised sample per latent
  ensure(ws.prior_in, b, R * 2 * d);
  ensure(ws.dprior_in, b, R * 2 * d);
  ensure(ws.dprior, b, R * 2 * d);
  ensure(ws.z, b, R * d);
  ensure(ws.dz, b, R * d);
  ensure(ws.dq, b, R * qw);
  parallel_for_2d(b, R, 2 * d, CopyColumns<T>{q, ws.prior_in.data(), qw, 0, 2 * d});
  m.prior.forward(b, params, ws.prior_in.data(), int(R), ws.prior);
  const T* prior = ws.prior.act.back().data();
  {
    const T* eps = ws.eps.data();
    T* z = ws.z.data();
    parallel_for_2d(b, R, d, [=] DYN_LAMBDA(int64_t r, int64_t k) {
      using std::exp;
      z[r * d + k] = q[r * qw + k] + exp(T(0.5) * q[r * qw + d + k]) * eps[r * d + k];
    });
  }
  // 3. reconstruction over the planned (latent, transition) pairs: [z_t, s_j, one-hot a_j, s_{j+1}] → r̂
  upload(ws.lo, b, plan.lo);
  upload(ws.offset, b, plan.offset);
  ensure(ws.dec_in, b, size_t(P) * DI);
  ensure(ws.ddec_in, b, size_t(P) * DI);
  ensure(ws.dec_target, b, size_t(P));
  ensure(ws.dec_dy, b, size_t(P));
  {
    const int32_t *lo = ws.lo.data(), *off = ws.offset.data(), *act = ep.act;
    const T *z = ws.z.data(), *obs = ep.obs, *rew = ep.rew, *next = ep.next_obs;
    T *in = ws.dec_in.data(), *target = ws.dec_target.data();
    parallel_for(b, R, [=] DYN_LAMBDA(int64_t r) {
      const int64_t bb = r % B;
      for (int64_t p = off[r]; p < off[r + 1]; ++p) {
        const int64_t j = lo[r] + (p - off[r]);
        T* x = in + p * DI;
        for (int k = 0; k < d; ++k) x[k] = z[r * d + k];
        for (int k = 0; k < O; ++k) x[d + k] = obs[(j * B + bb) * O + k];
        for (int k = 0; k < A; ++k) x[d + O + k] = act[j * B + bb] == k ? T(1) : T(0);
        for (int k = 0; k < O; ++k)
          x[d + O + A + k] = next ? next[(j * B + bb) * O + k] : obs[((j + 1) * B + bb) * O + k];
        target[p] = rew[j * B + bb];
      }
    });
  }
  BeliefLossStats st;
  st.pairs = P;
  T* dy = ws.dec_dy.data();
  ensure(ws.scalars, b, 4);
  if (P > 0) {
    m.decoder.forward(b, params, ws.dec_in.data(), int(P), ws.decoder);
    const T *rhat = ws.decoder.act.back().data(), *target = ws.dec_target.data();
    const T inv_b = T(1) / T(B);
    parallel_for(b, P, [=] DYN_LAMBDA(int64_t p) {
      const T e = rhat[p] - target[p];
      dy[p] = e;  // residual now, the gradient after the reduction
    });
    sum_of_squares(b, dy, size_t(P), ws.scalars.data());
    parallel_for(b, P, [=] DYN_LAMBDA(int64_t p) { dy[p] *= T(2) * inv_b; });
    ws.ddec_in.zero();
    m.decoder.backward(b, params, grads, ws.dec_in.data(), dy, ws.ddec_in.data(), ws.decoder, true);
  }
  // 4. d loss / d q: the sample's path (dz → dμ, dlog σ²), then the KL chain, consistency and BCE rows
  ws.dq.zero();
  ws.dprior.zero();
  {
    const int32_t* off = ws.offset.data();
    const T *dx = ws.ddec_in.data(), *eps = ws.eps.data();
    T* dq = ws.dq.data();
    parallel_for(b, R, [=] DYN_LAMBDA(int64_t r) {
      using std::exp;
      for (int k = 0; k < d; ++k) {
        T g = 0;
        for (int64_t p = off[r]; p < off[r + 1]; ++p) g += dx[p * DI + k];
        dq[r * qw + k] += g;
        dq[r * qw + d + k] += g * eps[r * d + k] * T(0.5) * exp(T(0.5) * q[r * qw + d + k]);
      }
    });
  }
  BeliefTermWeights<T> w;
  w.kl = T(cfg.kl_weight);
  w.consistency = cfg.beta > 0 && plan.consistency_pairs > 0 ? T(cfg.beta / double(plan.consistency_pairs)) : T(0);
  w.termination = cfg.termination > 0 ? T(cfg.termination / (double(steps) * B)) : T(0);
  w.session_kl = cfg.session_kl;
  w.conditioning = cfg.conditioning;
  ensure(ws.sums, b, size_t(B) * 3);
  {
    const int32_t* sid = ep.sid;
    const uint8_t* send = ep.send;
    T *dq = ws.dq.data(), *dprior = ws.dprior.data(), *sums = ws.sums.data();
    parallel_for(b, B, [=] DYN_LAMBDA(int64_t bb) {
      belief_terms_row(int(bb), B, steps, d, q, prior, sid, send, w, dq, dprior, sums + bb * 3);
    });
  }
  // 5. the prior's gradient flows into its parameters and back into the posteriors it was computed from
  if (cfg.session_kl && cfg.conditioning) {
    ws.dprior_in.zero();
    m.prior.backward(b, params, grads, ws.prior_in.data(), ws.dprior.data(), ws.dprior_in.data(), ws.prior, true);
    T* dq = ws.dq.data();
    const T* dpi = ws.dprior_in.data();
    parallel_for_2d(b, R, 2 * d, [=] DYN_LAMBDA(int64_t r, int64_t k) { dq[r * qw + k] += dpi[r * 2 * d + k]; });
  }
  // 6. through the heads, the GRU, the trunk and the embeddings
  m.encode_backward(params, grads, ws.dq.data(), ws.enc);
  // statistics: one read of the per-trajectory sums and the reconstruction scalar
  const std::vector<T> sums = ws.sums.to_host();
  double kl = 0, hinge = 0, bce = 0;
  for (int i = 0; i < B; ++i) {
    kl += double(sums[3 * i]);
    hinge += double(sums[3 * i + 1]);
    bce += double(sums[3 * i + 2]);
  }
  st.recon = P > 0 ? double(ws.scalars.to_host()[0]) / B : 0.0;
  st.kl = kl / B;
  st.consistency = plan.consistency_pairs > 0 ? hinge / double(plan.consistency_pairs) : 0.0;
  st.bce = bce / (double(steps) * B);
  st.total = st.recon + cfg.kl_weight * kl + (w.consistency > T(0) ? cfg.beta * st.consistency : 0.0) +
             (w.termination > T(0) ? cfg.termination * st.bce : 0.0);
  return st;
}

#define DYN_INSTANTIATE_BELIEF(T)                                                                          \
  template class BeliefModel<T>;                                                                           \
  template void carry_final_belief<T>(Backend, const T*, const uint8_t*, int64_t, int, T*);                \
  template void draw_belief_noise<T>(Backend, uint32_t, uint32_t, int64_t, T*);                            \
  template void predicted_session_ends<T>(Backend, const T*, int64_t, int, uint8_t*);                      \
  template void ground_truth_conditioning<T>(const BeliefModel<T>&, const T*, const EpisodeBatchView<T>&,  \
                                             BeliefLossWorkspace<T>&);                                     \
  template BeliefLossStats belief_loss<T>(const BeliefModel<T>&, const T*, T*, const EpisodeBatchView<T>&, \
                                          const DecodePlan&, const BeliefLossConfig&, BeliefLossWorkspace<T>&);
DYN_INSTANTIATE_BELIEF(float)
DYN_INSTANTIATE_BELIEF(double)

}  // namespace dyn
