// The belief model: encoder forward/backward, the online session bookkeeping, the decode plan and the belief loss
// (reconstruction over a flat list of (latent, transition) pairs through one batched decoder pass, then the
// per-trajectory KL / consistency / BCE row function of nn/belief_terms.h).
#include <algorithm>
#include <stdexcept>

#include "algo/agent_carry.h"
#include "algo/belief_model.h"
#include "algo/encoder_inputs.h"
#include "kernels/copy.h"
#include "kernels/gemm.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "kernels/philox.h"
#include "kernels/reduce.h"

namespace dyn {

namespace {

// The encoder's per-latent inputs of whole episodes into ws, [T+1, B].
template <class T>
void episode_inputs(Backend b, const EpisodeBatchView<T>& ep, BeliefLossWorkspace<T>& ws, int A) {
  const size_t R = size_t(ep.steps + 1) * size_t(ep.batch);
  ws.prev_a.ensure(b, R);
  ws.prev_r.ensure(b, R);
  ws.start.ensure(b, R);
  ws.prev_a_value.ensure(b, R * size_t(A));
  episode_inputs(b, ep, A, ws.prev_a.data(), ws.prev_a_value.data(), ws.prev_r.data(), ws.start.data());
}

// eps[i] ~ N(0, 1) from Philox(seed, kStreamBelief, i, step).
template <class T>
struct BeliefNoise {
  uint32_t seed, step;
  T* eps;
  DYN_HD void operator()(int64_t i) const { eps[i] = T(Philox(seed, kStreamBelief, uint32_t(i), step).normal()); }
};

// cond[i] = (μ, log σ²) of latent row i where close[i].
template <class T>
struct CarryFinalBelief {
  int d2, qw;
  const T* q;
  const uint8_t* close;
  T* cond;
  DYN_HD void operator()(int64_t i) const {
    if (close[i])
      for (int k = 0; k < d2; ++k) cond[i * d2 + k] = q[i * qw + k];
  }
};

// z = μ + exp(½ log σ²) ε, one (row, latent unit) per item.
template <class T>
struct SampleLatent {
  int d, qw;
  const T *q, *eps;
  T* z;
  DYN_HD void operator()(int64_t r, int64_t k) const {
    using std::exp;
    z[r * d + k] = q[r * qw + k] + exp(T(0.5) * q[r * qw + d + k]) * eps[r * d + k];
  }
};

// d loss / d (μ, log σ²) from d loss / d z through the sample.
template <class T>
struct SampleLatentBackward {
  int d, qw;
  const T *q, *eps, *dz;
  T* dq;
  DYN_HD void operator()(int64_t r, int64_t k) const {
    using std::exp;
    dq[r * qw + k] += dz[r * d + k];
    dq[r * qw + d + k] += dz[r * d + k] * eps[r * d + k] * T(0.5) * exp(T(0.5) * q[r * qw + d + k]);
  }
};

template <class T>
struct Scale {
  T by;
  T* x;
  DYN_HD void operator()(int64_t i) const { x[i] *= by; }
};

// The KL chain, consistency and termination terms of trajectory bb (nn/belief_terms.h).
template <class T>
struct BeliefTermsRows {
  int B, steps, d;
  const T *q, *prior;
  const int32_t* sid;
  const uint8_t *send, *elbo;
  BeliefTermWeights<T> w;
  T *dq, *dprior, *sums;
  DYN_HD void operator()(int64_t bb) const {
    belief_terms_row(int(bb), B, steps, d, q, prior, sid, send, elbo, w, dq, dprior, sums + bb * 3);
  }
};

// dq[r, k] += dprior_in[r, k] for the 2d (μ, log σ²) columns.
template <class T>
struct AddPriorInputGrad {
  int d2, qw;
  const T* dpi;
  T* dq;
  DYN_HD void operator()(int64_t r, int64_t k) const { dq[r * qw + k] += dpi[r * d2 + k]; }
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
  if (s.state_decoder)
    state_decoder = Mlp({{d + s.obs + s.actions, s.decoder_hidden, s.decoder_hidden, s.obs}}, layout, "belief.sdec");
}

template <class T>
void BeliefModel<T>::mlp_forward(const Mlp& mlp, const T* params, const T* x, int64_t R, MlpWorkspace<T>& w,
                                 int seeds, size_t param_stride) const {
  if (seeds == 1)
    mlp.forward(b_, params, x, int(R), w);
  else
    mlp.forward_seeds(b_, params, param_stride, x, seeds, int(R), w);
}

template <class T>
void BeliefModel<T>::embed_inputs(const T* params, const T* obs, const int32_t* prev_a, const T* prev_a_value,
                                  const T* prev_r, const uint8_t* start, int64_t R, EncoderWorkspace<T>& ws, int seeds,
                                  size_t param_stride) const {
  const int O = s_.obs, A = s_.actions, E = s_.embed, W = s_.trunk_in();
  const int64_t rows = R * seeds;  // [S, R, ·]
  ws.rows = int(rows);
  ws.xs.ensure(b_, rows * O);
  ws.xa.ensure(b_, rows * A);
  ws.xr.ensure(b_, rows);
  ws.trunk_in.ensure(b_, rows * W);
  ws.reset.ensure(b_, rows);
  T *xs = ws.xs.data(), *xa = ws.xa.data(), *xr = ws.xr.data();
  uint8_t* reset = ws.reset.data();
  encoder_inputs(b_, O, A, s_.discrete_actions, obs, prev_a, prev_a_value, prev_r, start, rows, xs, xa, xr, reset);
  mlp_forward(emb_s, params, xs, R, ws.es, seeds, param_stride);
  mlp_forward(emb_a, params, xa, R, ws.ea, seeds, param_stride);
  mlp_forward(emb_r, params, xr, R, ws.er, seeds, param_stride);
  T* tin = ws.trunk_in.data();
  place_columns(b_, ws.es.act.back().data(), rows, E, tin, W, 0);
  place_columns(b_, ws.ea.act.back().data(), rows, E, tin, W, E);
  place_columns(b_, ws.er.act.back().data(), rows, E, tin, W, 2 * E);
}

template <class T>
void BeliefModel<T>::encode(const T* params, const T* obs, const int32_t* prev_a, const T* prev_a_value,
                            const T* prev_r, const uint8_t* start, const T* cond, const T* h0, int steps, int batch,
                            EncoderWorkspace<T>& ws, int seeds, size_t param_stride) const {
  DYN_NVTX_RANGE("belief_encode");
  const int64_t R = int64_t(steps) * batch;  // per seed
  const int E = s_.embed, C = s_.cond_dim(), W = s_.trunk_in();
  embed_inputs(params, obs, prev_a, prev_a_value, prev_r, start, R, ws, seeds, param_stride);
  T* tin = ws.trunk_in.data();
  if (C > 0) place_columns(b_, cond, R * seeds, C, tin, W, 3 * E);
  mlp_forward(trunk, params, tin, R, ws.trunk, seeds, param_stride);
  const T* x = ws.trunk.act.back().data();
  const T* none = nullptr;
  if (seeds == 1)
    gru.forward(b_, params, x, ws.reset.data(), none, h0, steps, batch, ws.gru);
  else
    gru.forward_seeds(b_, params, param_stride, x, ws.reset.data(), none, h0, seeds, steps, batch, ws.gru);
  mlp_forward(heads, params, ws.gru.h.data(), R, ws.heads, seeds, param_stride);
}

template <class T>
void BeliefModel<T>::encode_sessions(const T* params, const T* obs, const int32_t* prev_a, const T* prev_a_value,
                                     const T* prev_r, const uint8_t* start, const uint8_t* send, int steps, int batch,
                                     EncoderWorkspace<T>& ws, T* cond_out) const {
  DYN_NVTX_RANGE("belief_encode_sessions");
  const int64_t R = int64_t(steps) * batch;
  const int E = s_.embed, C = s_.cond_dim(), W = s_.trunk_in(), d = s_.latent;
  if (C == 0) {
    encode(params, obs, prev_a, prev_a_value, prev_r, start, static_cast<const T*>(nullptr),
           static_cast<const T*>(nullptr), steps, batch, ws);
    return;
  }
  // what does not depend on the conditioning input runs over all rows at once: the embeddings
  embed_inputs(params, obs, prev_a, prev_a_value, prev_r, start, R, ws);
  ws.trunk.reserve(b_, trunk.shape(), int(R));
  ws.gru.reserve(b_, steps, batch, s_.hidden);
  ws.heads.reserve(b_, heads.shape(), int(R));
  ws.carried.ensure(b_, size_t(batch) * C);
  ws.carried.zero();
  T *tin = ws.trunk_in.data(), *carried = ws.carried.data();
  for (int t = 0; t < steps; ++t) {  // then one time step of rows [t·B, (t+1)·B) at a time
    const int row0 = t * batch;
    T* tin_t = tin + int64_t(row0) * W;
    place_columns(b_, carried, batch, C, tin_t, W, 3 * E);
    if (cond_out) {
      T* co = cond_out + int64_t(row0) * C;
      copy_values(b_, carried, co, int64_t(batch) * C);
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
  ws.dh.ensure(b_, R * H);
  ws.d_trunk_in.ensure(b_, R * W);
  for (Buffer<T>* buf : {&ws.d_es, &ws.d_ea, &ws.d_er}) buf->ensure(b_, R * E);
  ws.dh.zero();
  heads.backward(b_, params, grads, ws.gru.h.data(), dq, ws.dh.data(), ws.heads, true);
  // the GRU's input gradient (written, not added) is the trunk's output gradient
  ws.d_gru_in.ensure(b_, R * s_.trunk);
  gru.backward(b_, params, grads, ws.trunk.act.back().data(), ws.reset.data(), ws.dh.data(), 0, ws.d_gru_in.data(),
               static_cast<T*>(nullptr), static_cast<T*>(nullptr), ws.gru);
  ws.d_trunk_in.zero();
  trunk.backward(b_, params, grads, ws.trunk_in.data(), ws.d_gru_in.data(), ws.d_trunk_in.data(), ws.trunk, true);
  const T* dti = ws.d_trunk_in.data();
  take_columns(b_, dti, W, 0, R, E, ws.d_es.data());
  take_columns(b_, dti, W, E, R, E, ws.d_ea.data());
  take_columns(b_, dti, W, 2 * E, R, E, ws.d_er.data());
  emb_s.backward(b_, params, grads, ws.xs.data(), ws.d_es.data(), static_cast<T*>(nullptr), ws.es, true);
  emb_a.backward(b_, params, grads, ws.xa.data(), ws.d_ea.data(), static_cast<T*>(nullptr), ws.ea, true);
  emb_r.backward(b_, params, grads, ws.xr.data(), ws.d_er.data(), static_cast<T*>(nullptr), ws.er, true);
}

template <class T>
void draw_belief_noise(Backend b, uint32_t seed, uint32_t step, int64_t n, T* eps) {
  parallel_for(b, n, BeliefNoise<T>{seed, step, eps});
}

template <class T>
void carry_final_belief(Backend b, const T* q, const uint8_t* close, int64_t n, int latent, T* cond) {
  const int d2 = 2 * latent, qw = 2 * latent + 1;
  parallel_for(b, n, CarryFinalBelief<T>{d2, qw, q, close, cond});
}

DecodePlan plan_decodes(const std::vector<int32_t>& sid, int steps, int batch, bool session_recon, int elbo_samples,
                        int decode_samples, uint32_t seed, uint32_t step) {
  if (sid.size() != size_t(steps) * batch) throw std::invalid_argument("plan_decodes: sid must be [T, B]");
  const int T1 = steps + 1;
  const bool subsample = elbo_samples > 0 && elbo_samples < T1;
  DecodePlan p;
  p.offset.assign(size_t(T1) * batch + 1, 0);
  p.elbo.assign(size_t(T1) * batch, subsample ? 0 : 1);
  std::vector<int32_t> first(steps), last(steps);                 // per transition: its session's range
  std::vector<std::vector<int32_t>> decodes(size_t(T1) * batch);  // each latent's transitions, in increasing j
  for (int b = 0; b < batch; ++b) {
    for (int j = 0; j < steps; ++j)
      first[j] = (j > 0 && sid[size_t(j) * batch + b] == sid[size_t(j - 1) * batch + b]) ? first[j - 1] : j;
    for (int j = steps - 1; j >= 0; --j)
      last[j] = (j + 1 < steps && sid[size_t(j) * batch + b] == sid[size_t(j + 1) * batch + b]) ? last[j + 1] : j;
    for (int t = 0; t < steps; ++t)  // latents t and t + 1 share a session
      if (sid[size_t(t == 0 ? 0 : t - 1) * batch + b] == sid[size_t(t) * batch + b]) ++p.consistency_pairs;
    Philox rng(seed, kStreamSubsample, uint32_t(b), step);
    if (subsample) {  // elbo_samples distinct latents: a partial Fisher–Yates over 0..T
      std::vector<int32_t> ts(static_cast<size_t>(T1));
      for (int t = 0; t < T1; ++t) ts[size_t(t)] = t;
      for (int k = 0; k < elbo_samples; ++k) {
        const int pick = k + int(rng.uniform_int(uint32_t(T1 - k)));
        std::swap(ts[size_t(k)], ts[size_t(pick)]);
        p.elbo[size_t(ts[size_t(k)]) * batch + b] = 1;
      }
    }
    for (int t = 0; t < T1; ++t) {
      const size_t i = size_t(t) * batch + b;
      if (!p.elbo[i]) continue;
      const int j = t == 0 ? 0 : t - 1;  // the transition whose session latent t belongs to
      const int lo = session_recon ? first[j] : 0, hi = session_recon ? last[j] + 1 : steps;
      std::vector<int32_t>& d = decodes[i];
      if (decode_samples > 0 && decode_samples < hi - lo) {  // drawn with replacement, then in increasing j
        for (int k = 0; k < decode_samples; ++k) d.push_back(lo + int32_t(rng.uniform_int(uint32_t(hi - lo))));
        std::sort(d.begin(), d.end());
      } else {
        for (int jj = lo; jj < hi; ++jj) d.push_back(jj);
      }
    }
  }
  // the pair list by latent row t·B + b, then the same pairs by transition row (by increasing latent)
  std::vector<int32_t> tr_count(size_t(steps) * batch, 0);
  for (size_t i = 0; i < decodes.size(); ++i) {
    p.offset[i + 1] = p.offset[i] + int32_t(decodes[i].size());
    const int b = int(i % size_t(batch));
    for (int32_t j : decodes[i]) {
      p.pair_tr.push_back(j * batch + b);
      ++tr_count[size_t(j) * batch + b];
    }
  }
  p.pairs = p.offset.back();
  p.tr_offset.assign(tr_count.size() + 1, 0);
  for (size_t k = 0; k < tr_count.size(); ++k) p.tr_offset[k + 1] = p.tr_offset[k] + tr_count[k];
  p.tr_pair.resize(size_t(p.pairs));
  std::vector<int32_t> fill(p.tr_offset.begin(), p.tr_offset.end() - 1);
  for (int32_t q = 0; q < int32_t(p.pairs); ++q) p.tr_pair[size_t(fill[size_t(p.pair_tr[size_t(q)])]++)] = q;
  return p;
}

// ---- the reconstruction term (eq. 5) over the planned pairs ----
//
// The decoder's first layer is linear in its input [z_t, s_j, one-hot a_j, s_{j+1}], so its pre-activation for
// pair (t, j) is U_t + V_j + b with U = z W_zᵀ per latent [R, Hd] and V = [s_j, a_j, s_{j+1}] W_xᵀ per transition
// [T·B, Hd]: the [P, decoder_in] input is never built, and the first layer's GEMMs run over R + T·B rows instead of
// P (P ≈ 18·R for DynaMITE's sessions, T·R for VariBAD). The later layers are GEMMs over the P pairs.

namespace {

// Each pair's latent row r = t·B + b, from the plan's per-latent offsets.
struct PairRows {
  const int32_t* off;
  int32_t* row;  // [P]
  DYN_HD void operator()(int64_t r) const {
    for (int32_t p = off[r]; p < off[r + 1]; ++p) row[p] = int32_t(r);
  }
};

// A transition's decoder features [s_j, a_j features (one-hot, or the vector), s_{j+1}] (s_{j+1}: where the
// action led).
template <class T>
struct TransitionFeatures {
  int B, O, A;
  bool discrete;
  const T *obs, *next;
  const int32_t* act;
  const T* act_value;
  T* x;  // [T·B, 2·O + A]
  DYN_HD void operator()(int64_t i) const {
    const int w = 2 * O + A;
    for (int k = 0; k < O; ++k) x[i * w + k] = obs[i * O + k];
    for (int k = 0; k < A; ++k)
      x[i * w + O + k] = action_feature(discrete, discrete ? act[i] : 0,
                                        discrete ? static_cast<const T*>(nullptr) : act_value + i * A, false, k);
    for (int k = 0; k < O; ++k) x[i * w + O + A + k] = next ? next[i * O + k] : obs[(i + B) * O + k];
  }
};

// h1[p] = act(U[row p] + V[transition p] + b): the first layer of every pair (one instantiation per activation).
template <class T, Activation A>
struct PairFirstLayer {
  int Hd;
  const int32_t *row, *tr;
  const T *u, *v, *bias;
  T* h1;  // [P, Hd]
  DYN_HD void operator()(int64_t p, int64_t k) const {
    h1[p * Hd + k] = activate_as<A>(u[int64_t(row[p]) * Hd + k] + v[int64_t(tr[p]) * Hd + k] + bias[k]);
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

// dV[j·B + b] = Σ over the pairs that decode transition j·B + b (by increasing latent) of d1[pair].
template <class T>
struct TransitionGradSum {
  int Hd;
  const int32_t *tr_off, *tr_pair;
  const T* d1;
  T* dv;  // [T·B, Hd]
  DYN_HD void operator()(int64_t i) const {
    for (int k = 0; k < Hd; ++k) dv[i * Hd + k] = T(0);
    for (int32_t q = tr_off[i]; q < tr_off[i + 1]; ++q) {
      const int64_t p = tr_pair[q];
      for (int k = 0; k < Hd; ++k) dv[i * Hd + k] += d1[p * Hd + k];
    }
  }
};

}  // namespace

namespace {

// The state decoder's residual ŝ − s' for pair p: s' = where the action of its transition led.
template <class T>
struct PairStateResidual {
  int B, O;
  const int32_t* tr;
  const T *shat, *obs, *next;
  T* res;  // [P, O]
  DYN_HD void operator()(int64_t p, int64_t k) const {
    const int64_t i = tr[p];
    res[p * O + k] = shat[p * O + k] - (next ? next[i * O + k] : obs[(i + B) * O + k]);
  }
};

// One decoder over the plan's P pairs (ws.pair_row, ws.pair_tr): the first layer's pre-activation U_t + V_j + b
// with U = z W_zᵀ per latent [R, Hd] and V = x[:, :xw] W_xᵀ per transition [T·B, Hd] (x: ws.dec_x, XW columns), the
// later layers as GEMMs over the pairs; leaves each layer's output in dw.act[l] [P, ·]. x is [T·B, XW]; the decoder
// reads its first xw columns.
template <class T>
void pair_decoder_forward(Backend b, const Mlp& dec, const T* params, int d, const T* z, int64_t R, int64_t TB, int XW,
                          int xw, int64_t P, BeliefLossWorkspace<T>& ws, PairDecoderWorkspace<T>& dw) {
  const MlpShape& sh = dec.shape();
  const int Hd = sh.sizes[1], DI = sh.sizes[0];
  dw.u.ensure(b, size_t(R) * Hd);
  dw.v.ensure(b, size_t(TB) * Hd);
  dw.act.resize(size_t(sh.layers()));
  for (int l = 0; l < sh.layers(); ++l) dw.act[size_t(l)].ensure(b, size_t(P) * sh.sizes[l + 1]);
  const T* w0 = params + dec.weight_offset(0);  // W_z and W_x are column blocks of W_0 [Hd, DI]
  gemm<T>(b, false, true, int(R), Hd, d, T(1), z, d, w0, DI, T(0), dw.u.data(), Hd);
  gemm<T>(b, false, true, int(TB), Hd, xw, T(1), ws.dec_x.data(), XW, w0 + d, DI, T(0), dw.v.data(), Hd);
  with_activation(sh.layers() == 1 ? sh.output : sh.hidden, [&](auto a) {
    parallel_for_2d(b, P, Hd,
                    PairFirstLayer<T, decltype(a)::value>{Hd, ws.pair_row.data(), ws.pair_tr.data(), dw.u.data(),
                                                          dw.v.data(), params + dec.bias_offset(0), dw.act[0].data()});
  });
  for (int l = 1; l < sh.layers(); ++l)
    linear_forward(b, dw.act[size_t(l - 1)].data(), params + dec.weight_offset(l), params + dec.bias_offset(l),
                   dw.act[size_t(l)].data(), int(P), sh.sizes[l], sh.sizes[l + 1],
                   l == sh.layers() - 1 ? sh.output : sh.hidden);
}

// Given dw.dy = d loss / d output [P, out]: adds the decoder's parameter gradients into grads and d loss / d z
// into ws.dz (which the caller zeroed).
template <class T>
void pair_decoder_backward(Backend b, const Mlp& dec, const T* params, T* grads, int d, const T* z, int64_t R,
                           int64_t TB, int XW, int xw, int64_t P, BeliefLossWorkspace<T>& ws,
                           PairDecoderWorkspace<T>& dw) {
  const MlpShape& sh = dec.shape();
  const int DI = sh.sizes[0];
  int widest = 1;
  for (int l = 1; l <= sh.layers(); ++l) widest = sh.sizes[l] > widest ? sh.sizes[l] : widest;
  dw.ga.ensure(b, size_t(P) * widest);
  dw.gb.ensure(b, size_t(P) * widest);
  dw.du.ensure(b, size_t(R) * sh.sizes[1]);
  dw.dv.ensure(b, size_t(TB) * sh.sizes[1]);
  // layers L−1 .. 1 over the pairs; g ends as d loss / d (first layer's pre-activation) [P, Hd]
  T *g = dw.ga.data(), *next = dw.gb.data();
  const T* dy = dw.dy.data();
  for (int l = sh.layers() - 1; l >= 0; --l) {
    const int n_in = sh.sizes[l], n_out = sh.sizes[l + 1];
    activation_backward(b, l == sh.layers() - 1 ? sh.output : sh.hidden, dw.act[size_t(l)].data(), dy, g, P * n_out);
    if (l == 0) break;
    linear_backward(b, dw.act[size_t(l - 1)].data(), params + dec.weight_offset(l), g, static_cast<T*>(nullptr),
                    grads + dec.weight_offset(l), grads + dec.bias_offset(l), int(P), n_in, n_out, true);
    gemm<T>(b, false, false, int(P), n_in, n_out, T(1), g, n_out, params + dec.weight_offset(l), n_in, T(0), next,
            n_in);
    dy = next;
    std::swap(g, next);
  }
  // the first layer: fold the pairs back onto their latents (dU) and transitions (dV)
  const int Hd = sh.sizes[1];
  parallel_for(b, R, LatentGradSum<T>{Hd, ws.offset.data(), g, dw.du.data()});
  parallel_for(b, TB, TransitionGradSum<T>{Hd, ws.tr_offset.data(), ws.tr_pair.data(), g, dw.dv.data()});
  const T* w0 = params + dec.weight_offset(0);
  T* gw0 = grads + dec.weight_offset(0);
  gemm<T>(b, true, false, Hd, d, int(R), T(1), dw.du.data(), Hd, z, d, T(1), gw0, DI);  // dW_z += dUᵀ z
  gemm<T>(b, true, false, Hd, xw, int(TB), T(1), dw.dv.data(), Hd, ws.dec_x.data(), XW, T(1), gw0 + d,
          DI);                                                                 // dW_x += dVᵀ x
  column_sums(b, dw.du.data(), int(R), Hd, grads + dec.bias_offset(0), true);  // db += Σ_r dU (one GEMM)
  gemm<T>(b, false, false, int(R), d, Hd, T(1), dw.du.data(), Hd, w0, DI, T(1), ws.dz.data(), d);  // dz += dU W_z
}

}  // namespace

template <class T>
void ground_truth_conditioning(const BeliefModel<T>& m, const T* params, const EpisodeBatchView<T>& ep,
                               BeliefLossWorkspace<T>& ws) {
  DYN_NVTX_RANGE("belief_gt_conditioning");
  const Backend b = m.backend();
  const BeliefShape& s = m.shape();
  const int B = ep.batch, T1 = ep.steps + 1, d2 = 2 * s.latent;
  ws.cond.ensure(b, size_t(T1) * B * d2);
  ws.cond.zero();
  if (!s.conditioning) return;
  episode_inputs(b, ep, ws, s.actions);
  m.encode_sessions(params, ep.obs, ws.prev_a.data(), ws.prev_a_value.data(), ws.prev_r.data(), ws.start.data(),
                    ep.send, T1, B, ws.gt_enc, ws.cond.data());
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
  episode_inputs(b, ep, ws, s.actions);
  // 1. encoder over the whole episodes, with the caller's conditioning inputs or those of the ground-truth sessions
  //    built in the same pass
  if (s.conditioning && !cond)
    m.encode_sessions(params, ep.obs, ws.prev_a.data(), ws.prev_a_value.data(), ws.prev_r.data(), ws.start.data(),
                      ep.send, T1, B, ws.enc, static_cast<T*>(nullptr));
  else
    m.encode(params, ep.obs, ws.prev_a.data(), ws.prev_a_value.data(), ws.prev_r.data(), ws.start.data(),
             s.conditioning ? cond : nullptr, static_cast<const T*>(nullptr), T1, B, ws.enc);
  const T* q = BeliefModel<T>::q(ws.enc);  // [R, 2d+1]
  // 2. the learned prior of every posterior, and one reparameterised sample per latent
  ws.prior_in.ensure(b, R * 2 * d);
  ws.dprior_in.ensure(b, R * 2 * d);
  ws.dprior.ensure(b, R * 2 * d);
  ws.z.ensure(b, R * d);
  ws.dz.ensure(b, R * d);
  ws.dq.ensure(b, R * qw);
  take_columns(b, q, qw, 0, R, 2 * d, ws.prior_in.data());
  m.prior.forward(b, params, ws.prior_in.data(), int(R), ws.prior);
  const T* prior = ws.prior.act.back().data();
  {
    const T* eps = ws.eps.data();
    T* z = ws.z.data();
    parallel_for_2d(b, R, d, SampleLatent<T>{d, qw, q, eps, z});
  }
  // 3. reconstruction over the planned (latent, transition) pairs, each decoder's first layer split by input
  //    (pair_decoder_forward), then d loss / d output = 2 (output − target) / B back to dz (pair_decoder_backward)
  ws.offset.assign(b, plan.offset);
  ws.pair_tr.assign(b, plan.pair_tr);
  ws.tr_offset.assign(b, plan.tr_offset);
  ws.tr_pair.assign(b, plan.tr_pair);
  ws.elbo.assign(b, plan.elbo);
  BeliefLossStats st;
  st.pairs = P;
  ws.scalars.ensure(b, 4);
  ws.dq.zero();
  ws.dprior.zero();
  if (P > 0) {
    // the pairs' rows and the transitions' decoder features [s_j, a_j, s_{j+1}]
    const int O = s.obs, XW = 2 * s.obs + s.actions;
    const int64_t TB = int64_t(steps) * B;
    ws.pair_row.ensure(b, size_t(P));
    ws.dec_x.ensure(b, size_t(TB) * XW);
    parallel_for(b, R, PairRows{ws.offset.data(), ws.pair_row.data()});
    parallel_for(b, TB,
                 TransitionFeatures<T>{B, s.obs, s.actions, s.discrete_actions, ep.obs, ep.next_obs, ep.act,
                                       ep.act_value, ws.dec_x.data()});
    ws.dz.zero();
    const T two_over_b = T(2) / T(B);
    // the reward decoder on [z_t, s_j, a_j, s_{j+1}]: residuals r̂ − r, their squares' sum, then 2 (r̂ − r) / B
    PairDecoderWorkspace<T>& rd = ws.reward_dec;
    pair_decoder_forward(b, m.decoder, params, d, ws.z.data(), R, TB, XW, XW, P, ws, rd);
    rd.dy.ensure(b, size_t(P));
    parallel_for(b, P, PairResidual<T>{ws.pair_tr.data(), rd.act.back().data(), ep.rew, rd.dy.data()});
    T* dy = rd.dy.data();
    sum_of_squares(b, dy, size_t(P), ws.scalars.data());
    parallel_for(b, P, Scale<T>{two_over_b, dy});
    pair_decoder_backward(b, m.decoder, params, grads, d, ws.z.data(), R, TB, XW, XW, P, ws, rd);
    // the state decoder on [z_t, s_j, a_j] → s_{j+1} (halfcheetah_wind_vel: the wind changes the dynamics)
    if (s.state_decoder) {
      PairDecoderWorkspace<T>& sd = ws.state_dec;
      pair_decoder_forward(b, m.state_decoder, params, d, ws.z.data(), R, TB, XW, O + s.actions, P, ws, sd);
      sd.dy.ensure(b, size_t(P) * O);
      parallel_for_2d(
          b, P, O,
          PairStateResidual<T>{B, O, ws.pair_tr.data(), sd.act.back().data(), ep.obs, ep.next_obs, sd.dy.data()});
      T* sdy = sd.dy.data();
      const int64_t PO = P * O;
      sum_of_squares(b, sdy, size_t(PO), ws.scalars.data() + 1);
      const T coef = two_over_b * T(cfg.state_weight);
      parallel_for(b, PO, Scale<T>{coef, sdy});
      pair_decoder_backward(b, m.state_decoder, params, grads, d, ws.z.data(), R, TB, XW, O + s.actions, P, ws, sd);
    }
    // 4. d loss / d q through the sample z = μ + exp(½ log σ²) ε
    const T *dz = ws.dz.data(), *eps = ws.eps.data();
    T* dq = ws.dq.data();
    parallel_for_2d(b, R, d, SampleLatentBackward<T>{d, qw, q, eps, dz, dq});
  }
  // then the KL chain, consistency and BCE rows
  BeliefTermWeights<T> w;
  w.kl = T(cfg.kl_weight);
  w.consistency = cfg.beta > 0 && plan.consistency_pairs > 0 ? T(cfg.beta / double(plan.consistency_pairs)) : T(0);
  w.termination = cfg.termination > 0 ? T(cfg.termination / (double(steps) * B)) : T(0);
  w.session_kl = cfg.session_kl;
  w.conditioning = cfg.conditioning;
  ws.sums.ensure(b, size_t(B) * 3);
  {
    const int32_t* sid = ep.sid;
    const uint8_t* send = ep.send;
    T *dq = ws.dq.data(), *dprior = ws.dprior.data(), *sums = ws.sums.data();
    const uint8_t* elbo = ws.elbo.data();
    parallel_for(b, B, BeliefTermsRows<T>{B, steps, d, q, prior, sid, send, elbo, w, dq, dprior, sums});
  }
  // 5. the prior's gradient flows into its parameters and back into the posteriors it was computed from
  if (cfg.session_kl && cfg.conditioning) {
    ws.dprior_in.zero();
    m.prior.backward(b, params, grads, ws.prior_in.data(), ws.dprior.data(), ws.dprior_in.data(), ws.prior, true);
    T* dq = ws.dq.data();
    const T* dpi = ws.dprior_in.data();
    parallel_for_2d(b, R, 2 * d, AddPriorInputGrad<T>{2 * d, qw, dpi, dq});
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
  const std::vector<T> recon = ws.scalars.to_host();
  st.recon = P > 0 ? double(recon[0]) / B : 0.0;
  st.state_recon = P > 0 && s.state_decoder ? double(recon[1]) / B : 0.0;
  st.kl = kl / B;
  st.consistency = plan.consistency_pairs > 0 ? hinge / double(plan.consistency_pairs) : 0.0;
  st.bce = bce / (double(steps) * B);
  st.total = st.recon + cfg.state_weight * st.state_recon + cfg.kl_weight * kl +
             (w.consistency > T(0) ? cfg.beta * st.consistency : 0.0) +
             (w.termination > T(0) ? cfg.termination * st.bce : 0.0);
  return st;
}

#define DYN_INSTANTIATE_BELIEF(T)                                                                          \
  template class BeliefModel<T>;                                                                           \
  template void carry_final_belief<T>(Backend, const T*, const uint8_t*, int64_t, int, T*);                \
  template void draw_belief_noise<T>(Backend, uint32_t, uint32_t, int64_t, T*);                            \
  template void ground_truth_conditioning<T>(const BeliefModel<T>&, const T*, const EpisodeBatchView<T>&,  \
                                             BeliefLossWorkspace<T>&);                                     \
  template BeliefLossStats belief_loss<T>(const BeliefModel<T>&, const T*, T*, const EpisodeBatchView<T>&, \
                                          const DecodePlan&, const BeliefLossConfig&, const T*,            \
                                          BeliefLossWorkspace<T>&);
DYN_INSTANTIATE_BELIEF(float)
DYN_INSTANTIATE_BELIEF(double)

}  // namespace dyn
