// The belief model: encoder forward/backward, the online session bookkeeping, the decode plan and the belief loss
// (reconstruction over a flat list of (latent, transition) pairs through one batched decoder pass, then the
// per-trajectory KL / consistency / BCE row function of nn/belief_terms.h).
#include <stdexcept>

#include "algo/belief_model.h"
#include "kernels/gemm.h"
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

// The encoder's raw inputs of one row: s, one-hot a and r (zero where an episode starts), and the GRU's reset.
template <class T>
struct EncoderInputs {
  int O, A;
  const T* obs;
  const int32_t* prev_a;
  const T* prev_r;
  const uint8_t* start;
  T *xs, *xa, *xr;
  uint8_t* reset;
  DYN_HD void operator()(int64_t i) const {
    for (int k = 0; k < O; ++k) xs[i * O + k] = obs[i * O + k];
    for (int k = 0; k < A; ++k) xa[i * A + k] = (!start[i] && prev_a[i] == k) ? T(1) : T(0);
    xr[i] = start[i] ? T(0) : prev_r[i];
    reset[i] = start[i];
  }
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
void BeliefModel<T>::embed_inputs(const T* params, const T* obs, const int32_t* prev_a, const T* prev_r,
                                  const uint8_t* start, int64_t R, EncoderWorkspace<T>& ws) const {
  const int O = s_.obs, A = s_.actions, E = s_.embed, W = s_.trunk_in();
  ws.rows = int(R);
  ensure(ws.xs, b_, R * O);
  ensure(ws.xa, b_, R * A);
  ensure(ws.xr, b_, R);
  ensure(ws.trunk_in, b_, R * W);
  ensure(ws.reset, b_, R);
  T *xs = ws.xs.data(), *xa = ws.xa.data(), *xr = ws.xr.data();
  uint8_t* reset = ws.reset.data();
  parallel_for(b_, R, EncoderInputs<T>{O, A, obs, prev_a, prev_r, start, xs, xa, xr, reset});
  emb_s.forward(b_, params, xs, int(R), ws.es);
  emb_a.forward(b_, params, xa, int(R), ws.ea);
  emb_r.forward(b_, params, xr, int(R), ws.er);
  T* tin = ws.trunk_in.data();
  parallel_for_2d(b_, R, E, PlaceColumns<T>{ws.es.act.back().data(), tin, W, 0, E});
  parallel_for_2d(b_, R, E, PlaceColumns<T>{ws.ea.act.back().data(), tin, W, E, E});
  parallel_for_2d(b_, R, E, PlaceColumns<T>{ws.er.act.back().data(), tin, W, 2 * E, E});
}

template <class T>
void BeliefModel<T>::encode(const T* params, const T* obs, const int32_t* prev_a, const T* prev_r, const uint8_t* start,
                            const T* cond, const T* h0, int steps, int batch, EncoderWorkspace<T>& ws) const {
  DYN_NVTX_RANGE("belief_encode");
  const int64_t R = int64_t(steps) * batch;
  const int E = s_.embed, C = s_.cond_dim(), W = s_.trunk_in();
  embed_inputs(params, obs, prev_a, prev_r, start, R, ws);
  T* tin = ws.trunk_in.data();
  if (C > 0) parallel_for_2d(b_, R, C, PlaceColumns<T>{cond, tin, W, 3 * E, C});
  trunk.forward(b_, params, tin, int(R), ws.trunk);
  gru.forward(b_, params, ws.trunk.act.back().data(), ws.reset.data(), static_cast<const T*>(nullptr), h0, steps, batch,
              ws.gru);
  heads.forward(b_, params, ws.gru.h.data(), int(R), ws.heads);
}

template <class T>
void BeliefModel<T>::encode_sessions(const T* params, const T* obs, const int32_t* prev_a, const T* prev_r,
                                     const uint8_t* start, const uint8_t* send, int steps, int batch,
                                     EncoderWorkspace<T>& ws, T* cond_out) const {
  DYN_NVTX_RANGE("belief_encode_sessions");
  const int64_t R = int64_t(steps) * batch;
  const int E = s_.embed, C = s_.cond_dim(), W = s_.trunk_in(), d = s_.latent;
  if (C == 0) {
    encode(params, obs, prev_a, prev_r, start, static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), steps,
           batch, ws);
    return;
  }
  // what does not depend on the conditioning input runs over all rows at once: the embeddings
  embed_inputs(params, obs, prev_a, prev_r, start, R, ws);
  ws.trunk.reserve(b_, trunk.shape(), int(R));
  ws.gru.reserve(b_, steps, batch, s_.hidden);
  ws.heads.reserve(b_, heads.shape(), int(R));
  ensure(ws.carried, b_, size_t(batch) * C);
  ws.carried.zero();
  T *tin = ws.trunk_in.data(), *carried = ws.carried.data();
  for (int t = 0; t < steps; ++t) {  // then one time step of rows [t·B, (t+1)·B) at a time
    const int row0 = t * batch;
    T* tin_t = tin + int64_t(row0) * W;
    parallel_for_2d(b_, batch, C, PlaceColumns<T>{carried, tin_t, W, 3 * E, C});
    if (cond_out) {
      T* co = cond_out + int64_t(row0) * C;
      parallel_for(b_, int64_t(batch) * C, [=] DYN_LAMBDA(int64_t i) { co[i] = carried[i]; });
    }
    trunk.forward_rows(b_, params, tin, row0, batch, ws.trunk);
    gru.project_input(b_, params, ws.trunk.act.back().data(), t, t + 1, ws.gru);
    gru.recur(b_, params, ws.reset.data(), static_cast<const T*>(nullptr), t, t + 1, ws.gru);
    heads.forward_rows(b_, params, ws.gru.h.data(), row0, batch, ws.heads);
    // latent t closes its session where transition t − 1 was the session's last
    if (t >= 1)
      carry_final_belief(b_, q(ws) + int64_t(row0) * s_.head_out(), send + int64_t(t - 1) * batch, batch, d, carried);
  }
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

// ---- the reconstruction term (eq. 5) over the planned pairs ----
//
// The decoder's first layer is linear in its input [z_t, s_j, one-hot a_j, s_{j+1}], so its pre-activation for
// pair (t, j) is U_t + V_j + b with U = z W_zᵀ per latent [R, Hd] and V = [s_j, a_j, s_{j+1}] W_xᵀ per transition
// [T·B, Hd]: the [P, decoder_in] input is never built, and the first layer's GEMMs run over R + T·B rows instead of
// P (P ≈ 18·R for DynaMITE's sessions, T·R for VariBAD). The later layers are GEMMs over the P pairs.

namespace {

// Each pair's latent row r = t·B + b and transition row j·B + b, from the plan's per-latent ranges.
struct PairRows {
  int B;
  const int32_t *lo, *off;
  int32_t *row, *tr;  // [P]
  DYN_HD void operator()(int64_t r) const {
    const int32_t bb = int32_t(r % B);
    for (int32_t p = off[r]; p < off[r + 1]; ++p) {
      row[p] = int32_t(r);
      tr[p] = (lo[r] + (p - off[r])) * B + bb;
    }
  }
};

// A transition's decoder features [s_j, one-hot a_j, s_{j+1}] (s_{j+1}: where the action led).
template <class T>
struct TransitionFeatures {
  int B, O, A;
  const T *obs, *next;
  const int32_t* act;
  T* x;  // [T·B, 2·O + A]
  DYN_HD void operator()(int64_t i) const {
    const int w = 2 * O + A;
    for (int k = 0; k < O; ++k) x[i * w + k] = obs[i * O + k];
    for (int k = 0; k < A; ++k) x[i * w + O + k] = act[i] == k ? T(1) : T(0);
    for (int k = 0; k < O; ++k) x[i * w + O + A + k] = next ? next[i * O + k] : obs[(i + B) * O + k];
  }
};

// h1[p] = act(U[row p] + V[transition p] + b): the first layer of every pair.
template <class T>
struct PairFirstLayer {
  int Hd;
  Activation a;
  const int32_t *row, *tr;
  const T *u, *v, *bias;
  T* h1;  // [P, Hd]
  DYN_HD void operator()(int64_t p, int64_t k) const {
    h1[p * Hd + k] = activate(a, u[int64_t(row[p]) * Hd + k] + v[int64_t(tr[p]) * Hd + k] + bias[k]);
  }
};

// residual r̂_p − r_j
template <class T>
struct PairResidual {
  const int32_t* tr;
  const T *rhat, *rew;
  T* res;
  DYN_HD void operator()(int64_t p) const { res[p] = rhat[p] - rew[tr[p]]; }
};

// dU[r] = Σ over latent r's pairs of d1[p] (they are contiguous in the plan).
template <class T>
struct LatentGradSum {
  int Hd;
  const int32_t* off;
  const T* d1;
  T* du;  // [R, Hd]
  DYN_HD void operator()(int64_t r) const {
    for (int k = 0; k < Hd; ++k) du[r * Hd + k] = T(0);
    for (int64_t p = off[r]; p < off[r + 1]; ++p)
      for (int k = 0; k < Hd; ++k) du[r * Hd + k] += d1[p * Hd + k];
  }
};

// dV[j·B + b] = Σ over the latents t of trajectory b that decode transition j of d1[their pair (t, j)].
template <class T>
struct TransitionGradSum {
  int B, T1, Hd;
  const int32_t *lo, *off;
  const T* d1;
  T* dv;  // [T·B, Hd]
  DYN_HD void operator()(int64_t i) const {
    const int32_t j = int32_t(i / B), bb = int32_t(i % B);
    for (int k = 0; k < Hd; ++k) dv[i * Hd + k] = T(0);
    for (int t = 0; t < T1; ++t) {
      const int64_t r = int64_t(t) * B + bb;
      if (j < lo[r] || j >= lo[r] + (off[r + 1] - off[r])) continue;
      const int64_t p = off[r] + (j - lo[r]);
      for (int k = 0; k < Hd; ++k) dv[i * Hd + k] += d1[p * Hd + k];
    }
  }
};

// into[k] += Σ_r x[r, k]
template <class T>
struct ColumnSumInto {
  int64_t rows;
  int cols;
  const T* x;
  T* into;
  DYN_HD void operator()(int64_t k) const {
    T acc = 0;
    for (int64_t r = 0; r < rows; ++r) acc += x[r * cols + k];
    into[k] += acc;
  }
};

}  // namespace

// Decoder forward over the plan's P pairs (ws.lo, ws.offset on the backend): leaves each layer's output in
// ws.dec_act[l] [P, ·] and the residuals r̂ − r in ws.dec_dy [P].
template <class T>
void reconstruction_forward(const BeliefModel<T>& m, const T* params, const EpisodeBatchView<T>& ep, const T* z,
                            int64_t P, BeliefLossWorkspace<T>& ws) {
  const Backend b = m.backend();
  const BeliefShape& s = m.shape();
  const MlpShape& sh = m.decoder.shape();
  const int B = ep.batch, d = s.latent, XW = 2 * s.obs + s.actions, Hd = sh.sizes[1], DI = sh.sizes[0];
  const int64_t R = int64_t(ep.steps + 1) * B, TB = int64_t(ep.steps) * B;
  ensure(ws.pair_row, b, size_t(P));
  ensure(ws.pair_tr, b, size_t(P));
  ensure(ws.dec_x, b, size_t(TB) * XW);
  ensure(ws.dec_u, b, size_t(R) * Hd);
  ensure(ws.dec_v, b, size_t(TB) * Hd);
  ensure(ws.dec_dy, b, size_t(P));
  ws.dec_act.resize(size_t(sh.layers()));
  for (int l = 0; l < sh.layers(); ++l) ensure(ws.dec_act[size_t(l)], b, size_t(P) * sh.sizes[l + 1]);
  parallel_for(b, R, PairRows{B, ws.lo.data(), ws.offset.data(), ws.pair_row.data(), ws.pair_tr.data()});
  parallel_for(b, TB, TransitionFeatures<T>{B, s.obs, s.actions, ep.obs, ep.next_obs, ep.act, ws.dec_x.data()});
  // U = z W_zᵀ, V = x W_xᵀ: W_z and W_x are column blocks of W_0 [Hd, DI]
  const T* w0 = params + m.decoder.weight_offset(0);
  gemm<T>(b, false, true, int(R), Hd, d, T(1), z, d, w0, DI, T(0), ws.dec_u.data(), Hd);
  gemm<T>(b, false, true, int(TB), Hd, XW, T(1), ws.dec_x.data(), XW, w0 + d, DI, T(0), ws.dec_v.data(), Hd);
  parallel_for_2d(
      b, P, Hd,
      PairFirstLayer<T>{Hd, sh.layers() == 1 ? sh.output : sh.hidden, ws.pair_row.data(), ws.pair_tr.data(),
                        ws.dec_u.data(), ws.dec_v.data(), params + m.decoder.bias_offset(0), ws.dec_act[0].data()});
  for (int l = 1; l < sh.layers(); ++l)
    linear_forward(b, ws.dec_act[size_t(l - 1)].data(), params + m.decoder.weight_offset(l),
                   params + m.decoder.bias_offset(l), ws.dec_act[size_t(l)].data(), int(P), sh.sizes[l],
                   sh.sizes[l + 1], l == sh.layers() - 1 ? sh.output : sh.hidden);
  parallel_for(b, P, PairResidual<T>{ws.pair_tr.data(), ws.dec_act.back().data(), ep.rew, ws.dec_dy.data()});
}

// Given ws.dec_dy = d loss / d r̂ [P]: adds the decoder's parameter gradients into grads and writes
// dz [R, d] = d loss / d z into ws.dz.
template <class T>
void reconstruction_backward(const BeliefModel<T>& m, const T* params, T* grads, const EpisodeBatchView<T>& ep,
                             const T* z, int64_t P, BeliefLossWorkspace<T>& ws) {
  const Backend b = m.backend();
  const BeliefShape& s = m.shape();
  const MlpShape& sh = m.decoder.shape();
  const int B = ep.batch, T1 = ep.steps + 1, d = s.latent, XW = 2 * s.obs + s.actions, DI = sh.sizes[0];
  const int64_t R = int64_t(T1) * B, TB = int64_t(ep.steps) * B;
  int widest = 1;
  for (int l = 1; l <= sh.layers(); ++l) widest = sh.sizes[l] > widest ? sh.sizes[l] : widest;
  ensure(ws.dec_ga, b, size_t(P) * widest);
  ensure(ws.dec_gb, b, size_t(P) * widest);
  ensure(ws.dec_du, b, size_t(R) * sh.sizes[1]);
  ensure(ws.dec_dv, b, size_t(TB) * sh.sizes[1]);
  // layers L−1 .. 1 over the pairs; g ends as d loss / d (first layer's pre-activation) [P, Hd]
  T *g = ws.dec_ga.data(), *next = ws.dec_gb.data();
  const T* dy = ws.dec_dy.data();
  for (int l = sh.layers() - 1; l >= 0; --l) {
    const int n_in = sh.sizes[l], n_out = sh.sizes[l + 1];
    activation_backward(b, l == sh.layers() - 1 ? sh.output : sh.hidden, ws.dec_act[size_t(l)].data(), dy, g,
                        P * n_out);
    if (l == 0) break;
    linear_backward(b, ws.dec_act[size_t(l - 1)].data(), params + m.decoder.weight_offset(l), g,
                    static_cast<T*>(nullptr), grads + m.decoder.weight_offset(l), grads + m.decoder.bias_offset(l),
                    int(P), n_in, n_out, true);
    gemm<T>(b, false, false, int(P), n_in, n_out, T(1), g, n_out, params + m.decoder.weight_offset(l), n_in, T(0), next,
            n_in);
    dy = next;
    std::swap(g, next);
  }
  // the first layer: fold the pairs back onto their latents (dU) and transitions (dV)
  const int Hd = sh.sizes[1];
  parallel_for(b, R, LatentGradSum<T>{Hd, ws.offset.data(), g, ws.dec_du.data()});
  parallel_for(b, TB, TransitionGradSum<T>{B, T1, Hd, ws.lo.data(), ws.offset.data(), g, ws.dec_dv.data()});
  const T* w0 = params + m.decoder.weight_offset(0);
  T* gw0 = grads + m.decoder.weight_offset(0);
  gemm<T>(b, true, false, Hd, d, int(R), T(1), ws.dec_du.data(), Hd, z, d, T(1), gw0, DI);  // dW_z += dUᵀ z
  gemm<T>(b, true, false, Hd, XW, int(TB), T(1), ws.dec_dv.data(), Hd, ws.dec_x.data(), XW, T(1), gw0 + d,
          DI);                                                                                       // dW_x += dVᵀ x
  parallel_for(b, Hd, ColumnSumInto<T>{R, Hd, ws.dec_du.data(), grads + m.decoder.bias_offset(0)});  // db += Σ_r dU
  gemm<T>(b, false, false, int(R), d, Hd, T(1), ws.dec_du.data(), Hd, w0, DI, T(0), ws.dz.data(), d);  // dz = dU W_z
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
  m.encode_sessions(params, ep.obs, ws.prev_a.data(), ws.prev_r.data(), ws.start.data(), ep.send, T1, B, ws.gt_enc,
                    ws.cond.data());
}

template <class T>
BeliefLossStats belief_loss(const BeliefModel<T>& m, const T* params, T* grads, const EpisodeBatchView<T>& ep,
                            const DecodePlan& plan, const BeliefLossConfig& cfg, const T* cond,
                            BeliefLossWorkspace<T>& ws) {
  DYN_NVTX_RANGE("belief_loss");
  const Backend b = m.backend();
  const BeliefShape& s = m.shape();
  const int B = ep.batch, steps = ep.steps, T1 = steps + 1, d = s.latent;
  const int qw = 2 * d + 1;
  const int64_t R = int64_t(T1) * B, P = plan.pairs;
  if (ws.eps.size() < size_t(R) * d) throw std::invalid_argument("belief_loss: ws.eps must hold [T+1, B, d] noise");
  episode_inputs(b, ep, ws);
  // 1. encoder over the whole episodes, with the caller's conditioning inputs or those of the ground-truth sessions
  //    built in the same pass
  if (s.conditioning && !cond)
    m.encode_sessions(params, ep.obs, ws.prev_a.data(), ws.prev_r.data(), ws.start.data(), ep.send, T1, B, ws.enc,
                      static_cast<T*>(nullptr));
  else
    m.encode(params, ep.obs, ws.prev_a.data(), ws.prev_r.data(), ws.start.data(), s.conditioning ? cond : nullptr,
             static_cast<const T*>(nullptr), T1, B, ws.enc);
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
  // 3. reconstruction over the planned (latent, transition) pairs, the decoder's first layer split by input
  //    (reconstruction_forward), then d loss / d r̂ = 2 (r̂ − r) / B back to dz (reconstruction_backward)
  upload(ws.lo, b, plan.lo);
  upload(ws.offset, b, plan.offset);
  BeliefLossStats st;
  st.pairs = P;
  ensure(ws.scalars, b, 4);
  ws.dq.zero();
  ws.dprior.zero();
  if (P > 0) {
    reconstruction_forward(m, params, ep, ws.z.data(), P, ws);
    T* dy = ws.dec_dy.data();
    sum_of_squares(b, dy, size_t(P), ws.scalars.data());  // dy holds the residuals r̂ − r here
    const T two_over_b = T(2) / T(B);
    parallel_for(b, P, [=] DYN_LAMBDA(int64_t p) { dy[p] *= two_over_b; });
    reconstruction_backward(m, params, grads, ep, ws.z.data(), P, ws);
    // 4. d loss / d q through the sample z = μ + exp(½ log σ²) ε
    const T *dz = ws.dz.data(), *eps = ws.eps.data();
    T* dq = ws.dq.data();
    parallel_for_2d(b, R, d, [=] DYN_LAMBDA(int64_t r, int64_t k) {
      using std::exp;
      dq[r * qw + k] += dz[r * d + k];
      dq[r * qw + d + k] += dz[r * d + k] * eps[r * d + k] * T(0.5) * exp(T(0.5) * q[r * qw + d + k]);
    });
  }
  // then the KL chain, consistency and BCE rows
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
                                          const DecodePlan&, const BeliefLossConfig&, const T*,            \
                                          BeliefLossWorkspace<T>&);
DYN_INSTANTIATE_BELIEF(float)
DYN_INSTANTIATE_BELIEF(double)

}  // namespace dyn
