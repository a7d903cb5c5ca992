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

// The encoder's per-latent inputs of whole episodes into ws, [S, T+1, B].
template <class T>
void episode_inputs(Backend b, const EpisodeBatchView<T>& ep, BeliefLossWorkspace<T>& ws, int A) {
  const size_t R = size_t(ep.runs) * size_t(ep.steps + 1) * size_t(ep.batch);
  ws.prev_a.ensure(b, R);
  ws.prev_r.ensure(b, R);
  ws.start.ensure(b, R);
  ws.prev_a_value.ensure(b, R * size_t(A));
  episode_inputs(b, ep, A, ws.prev_a.data(), ws.prev_a_value.data(), ws.prev_r.data(), ws.start.data());
}

// eps[i] ~ N(0, 1) of [S, n]: run i / n's Philox(seed, kStreamBelief, i mod n, step), the run's seed seeds[run]
// (nullptr: one run, `seed`).
template <class T>
struct BeliefNoise {
  const uint32_t* seeds;
  uint32_t seed;
  int64_t n;
  uint32_t step;
  T* eps;
  DYN_HD void operator()(int64_t i) const {
    eps[i] = T(Philox(seeds ? seeds[i / n] : seed, kStreamBelief, uint32_t(i % n), step).normal());
  }
};

// Rows of one time step of whole episodes across a seed batch: item i of [S, B] is run s = i / B's episode i mod B,
// at latent row s·R + row0 + (i mod B) of the seed-major [S, T+1, B] rows.
struct StepRowsOfRuns {
  int64_t B, R, row0;
  DYN_HD int64_t row(int64_t i) const { return (i / B) * R + row0 + i % B; }
};

// The carried conditioning inputs [S·B, C] into columns [col, col + C) of the step's rows of x [S·R, width].
template <class T>
struct PlaceStepColumns {
  StepRowsOfRuns rows;
  int C, width, col;
  const T* carried;
  T* x;
  DYN_HD void operator()(int64_t i, int64_t k) const { x[rows.row(i) * width + col + k] = carried[i * C + k]; }
};

// Where the previous transition ended its session, the step's belief (μ, log σ²) becomes the carried input; send
// [S, T, B] (transition row of run s: s·T·B + (t − 1)·B + b).
template <class T>
struct CarryStepBelief {
  StepRowsOfRuns rows;
  int d2, qw;
  int64_t TB, prev_tr;  // transitions per run; (t − 1)·B
  const T* q;
  const uint8_t* send;
  T* carried;
  DYN_HD void operator()(int64_t i) const {
    const int64_t B = rows.B;
    if (!send[(i / B) * TB + prev_tr + i % B]) return;
    const int64_t r = rows.row(i);
    for (int k = 0; k < d2; ++k) carried[i * d2 + k] = q[r * qw + k];
  }
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

// The KL chain, consistency and termination terms of trajectory bb of [S, B] (nn/belief_terms.h): its run's
// blocks of the seed-major rows, with its run's consistency weight.
template <class T>
struct BeliefTermsRows {
  int B, steps, d;
  const T *q, *prior;
  const int32_t* sid;
  const uint8_t *send, *elbo;
  BeliefTermWeights<T> w;
  const T* run_consistency;  // [S]
  T *dq, *dprior, *sums;
  DYN_HD void operator()(int64_t bb) const {
    const int64_t run = bb / B, R = int64_t(steps + 1) * B, TB = int64_t(steps) * B, qw = 2 * d + 1, pw = 2 * d;
    BeliefTermWeights<T> wr = w;
    wr.consistency = run_consistency[run];
    belief_terms_row(int(bb % B), B, steps, d, q + run * R * qw, prior + run * R * pw, sid + run * TB, send + run * TB,
                     elbo + run * R, wr, dq + run * R * qw, dprior + run * R * pw, sums + bb * 3);
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
void BeliefModel<T>::mlp_forward(const Mlp& mlp, const T* params, const T* x, int64_t R, MlpWorkspace<T>& w, int seeds,
                                 size_t param_stride) const {
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
  ws.seeds = seeds;
  ws.param_stride = param_stride;
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
                                     EncoderWorkspace<T>& ws, T* cond_out, int seeds, size_t param_stride) const {
  DYN_NVTX_RANGE("belief_encode_sessions");
  const int64_t R = int64_t(steps) * batch;  // per seed
  const int E = s_.embed, C = s_.cond_dim(), W = s_.trunk_in(), d = s_.latent, S = seeds;
  if (C == 0) {
    encode(params, obs, prev_a, prev_a_value, prev_r, start, static_cast<const T*>(nullptr),
           static_cast<const T*>(nullptr), steps, batch, ws, seeds, param_stride);
    return;
  }
  // what does not depend on the conditioning input runs over all rows at once: the embeddings
  embed_inputs(params, obs, prev_a, prev_a_value, prev_r, start, R, ws, seeds, param_stride);
  ws.seeds = seeds;
  ws.param_stride = param_stride;
  ws.trunk.reserve(b_, trunk.shape(), int(R * S));
  ws.gru.reserve(b_, steps, batch, s_.hidden, S);
  ws.heads.reserve(b_, heads.shape(), int(R * S));
  ws.carried.ensure(b_, size_t(S) * batch * C);
  ws.carried.zero();
  T *tin = ws.trunk_in.data(), *carried = ws.carried.data();
  const int64_t SB = int64_t(S) * batch;
  for (int t = 0; t < steps; ++t) {  // then one time step of every seed's rows [t·B, (t+1)·B) at a time
    const int row0 = t * batch;
    const StepRowsOfRuns rows{batch, R, row0};
    parallel_for_2d(b_, SB, C, PlaceStepColumns<T>{rows, C, W, 3 * E, carried, tin});
    if (cond_out) parallel_for_2d(b_, SB, C, PlaceStepColumns<T>{rows, C, C, 0, carried, cond_out});
    if (S == 1) {  // (on CUDA the fused kernels where the shape has them)
      trunk.forward_rows(b_, params, tin, row0, batch, ws.trunk);
      gru.project_input(b_, params, ws.trunk.act.back().data(), t, t + 1, ws.gru);
      gru.recur(b_, params, ws.reset.data(), static_cast<const T*>(nullptr), t, t + 1, ws.gru);
      heads.forward_rows(b_, params, ws.gru.h.data(), row0, batch, ws.heads);
    } else {
      trunk.forward_rows_seeds(b_, params, param_stride, tin, row0, batch, S, ws.trunk);
      gru.project_input_seeds(b_, params, param_stride, ws.trunk.act.back().data(), t, t + 1, ws.gru);
      gru.recur_seeds(b_, params, param_stride, ws.reset.data(), static_cast<const T*>(nullptr), t, t + 1, ws.gru);
      heads.forward_rows_seeds(b_, params, param_stride, ws.gru.h.data(), row0, batch, S, ws.heads);
    }
    // latent t closes its session where transition t − 1 was the session's last
    if (t >= 1)
      parallel_for(b_, SB,
                   CarryStepBelief<T>{rows, 2 * d, s_.head_out(), int64_t(steps - 1) * batch, int64_t(t - 1) * batch,
                                      q(ws), send, carried});
  }
}

template <class T>
void BeliefModel<T>::encode_backward(const T* params, T* grads, const T* dq, EncoderWorkspace<T>& ws) const {
  DYN_NVTX_RANGE("belief_encode_backward");
  const int64_t R = ws.rows;  // every seed's
  const int E = s_.embed, W = s_.trunk_in(), H = s_.hidden, S = ws.seeds;
  const size_t ps = ws.param_stride;
  T* none = nullptr;
  ws.dh.ensure(b_, R * H);
  ws.d_trunk_in.ensure(b_, R * W);
  for (Buffer<T>* buf : {&ws.d_es, &ws.d_ea, &ws.d_er}) buf->ensure(b_, R * E);
  ws.dh.zero();
  heads.backward_seeds(b_, params, grads, ps, ws.gru.h.data(), dq, ws.dh.data(), S, ws.heads, true);
  // the GRU's input gradient (written, not added) is the trunk's output gradient
  ws.d_gru_in.ensure(b_, R * s_.trunk);
  gru.backward_seeds(b_, params, grads, ps, ws.trunk.act.back().data(), ws.reset.data(), ws.dh.data(), 0,
                     ws.d_gru_in.data(), none, none, ws.gru);
  ws.d_trunk_in.zero();
  trunk.backward_seeds(b_, params, grads, ps, ws.trunk_in.data(), ws.d_gru_in.data(), ws.d_trunk_in.data(), S, ws.trunk,
                       true);
  const T* dti = ws.d_trunk_in.data();
  take_columns(b_, dti, W, 0, R, E, ws.d_es.data());
  take_columns(b_, dti, W, E, R, E, ws.d_ea.data());
  take_columns(b_, dti, W, 2 * E, R, E, ws.d_er.data());
  emb_s.backward_seeds(b_, params, grads, ps, ws.xs.data(), ws.d_es.data(), none, S, ws.es, true);
  emb_a.backward_seeds(b_, params, grads, ps, ws.xa.data(), ws.d_ea.data(), none, S, ws.ea, true);
  emb_r.backward_seeds(b_, params, grads, ps, ws.xr.data(), ws.d_er.data(), none, S, ws.er, true);
}

template <class T>
void draw_belief_noise(Backend b, uint32_t seed, uint32_t step, int64_t n, T* eps) {
  parallel_for(b, n, BeliefNoise<T>{nullptr, seed, n > 0 ? n : 1, step, eps});
}

template <class T>
void draw_belief_noise_runs(Backend b, const uint32_t* seeds, int runs, uint32_t step, int64_t n, T* eps) {
  parallel_for(b, int64_t(runs) * n, BeliefNoise<T>{seeds, 0u, n > 0 ? n : 1, step, eps});
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
  p.run_pairs = {0, p.pairs};
  p.run_consistency_pairs = {p.consistency_pairs};
  return p;
}

DecodePlan concat_plans(const std::vector<DecodePlan>& plans, int steps, int batch) {
  const size_t latents = size_t(steps + 1) * batch, transitions = size_t(steps) * batch;
  DecodePlan all;
  all.offset.push_back(0);
  all.tr_offset.push_back(0);
  all.run_pairs.push_back(0);
  for (size_t s = 0; s < plans.size(); ++s) {
    const DecodePlan& p = plans[s];
    if (p.offset.size() != latents + 1 || p.tr_offset.size() != transitions + 1 || p.runs() != 1)
      throw std::invalid_argument("concat_plans: run " + std::to_string(s) + "'s plan is not one run's of " +
                                  std::to_string(steps) + " steps x " + std::to_string(batch) + " episodes");
    const int32_t first = int32_t(all.pairs), tr0 = int32_t(s * transitions);
    for (size_t i = 1; i < p.offset.size(); ++i) all.offset.push_back(first + p.offset[i]);
    for (size_t i = 1; i < p.tr_offset.size(); ++i) all.tr_offset.push_back(first + p.tr_offset[i]);
    for (const int32_t tr : p.pair_tr) all.pair_tr.push_back(tr0 + tr);
    for (const int32_t q : p.tr_pair) all.tr_pair.push_back(first + q);
    all.elbo.insert(all.elbo.end(), p.elbo.begin(), p.elbo.end());
    all.pairs += p.pairs;
    all.consistency_pairs += p.consistency_pairs;
    all.run_pairs.push_back(all.pairs);
    all.run_consistency_pairs.push_back(p.consistency_pairs);
  }
  return all;
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

// The observation row of transition row i's s_j in seed-major episodes (obs [S, T+1, B], transitions [S, T, B]):
// each run before transition i's has B more observation rows than transition rows.
DYN_HD int64_t transition_obs_row(int64_t i, int64_t B, int64_t TB) { return i + (i / TB) * B; }

// A transition's decoder features [s_j, a_j features (one-hot, or the vector), s_{j+1}] (s_{j+1}: where the
// action led).
template <class T>
struct TransitionFeatures {
  int B, O, A;
  int64_t TB;  // transitions per run
  bool discrete;
  const T *obs, *next;
  const int32_t* act;
  const T* act_value;
  T* x;  // [S·T·B, 2·O + A]
  DYN_HD void operator()(int64_t i) const {
    const int w = 2 * O + A;
    const int64_t o = transition_obs_row(i, B, TB);
    for (int k = 0; k < O; ++k) x[i * w + k] = obs[o * O + k];
    for (int k = 0; k < A; ++k)
      x[i * w + O + k] = action_feature(discrete, discrete ? act[i] : 0,
                                        discrete ? static_cast<const T*>(nullptr) : act_value + i * A, false, k);
    for (int k = 0; k < O; ++k) x[i * w + O + A + k] = next ? next[i * O + k] : obs[(o + B) * O + k];
  }
};

// h1[p] = act(U[row p] + V[transition p] + b): the first layer of every pair (one instantiation per activation);
// a seed batch's pair reads its run's bias (its latent row's run, R latent rows per run).
template <class T, Activation A>
struct PairFirstLayer {
  int Hd;
  int64_t R;
  size_t param_stride;
  const int32_t *row, *tr;
  const T *u, *v, *bias;
  T* h1;  // [P, Hd]
  DYN_HD void operator()(int64_t p, int64_t k) const {
    const T* b = param_stride ? bias + size_t(row[p] / R) * param_stride : bias;
    h1[p * Hd + k] = activate_as<A>(u[int64_t(row[p]) * Hd + k] + v[int64_t(tr[p]) * Hd + k] + b[k]);
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
  int64_t TB;  // transitions per run
  const int32_t* tr;
  const T *shat, *obs, *next;
  T* res;  // [P, O]
  DYN_HD void operator()(int64_t p, int64_t k) const {
    const int64_t i = tr[p];
    res[p * O + k] = shat[p * O + k] - (next ? next[i * O + k] : obs[(transition_obs_row(i, B, TB) + B) * O + k]);
  }
};

// A seed batch's shape for the pair decoders: S runs of R latent rows and TB transition rows each, run s's
// parameters at s · param_stride, its pairs [run_pairs[s], run_pairs[s+1]).
struct PairRuns {
  int S;
  int64_t R, TB;
  size_t param_stride;
  const std::vector<int64_t>* run_pairs;  // [S + 1]
  int64_t first(int s) const { return (*run_pairs)[size_t(s)]; }
  int count(int s) const { return int((*run_pairs)[size_t(s) + 1] - (*run_pairs)[size_t(s)]); }
};

// One decoder over the plan's P pairs (ws.pair_row, ws.pair_tr): the first layer's pre-activation U_t + V_j + b
// with U = z W_zᵀ per latent [S·R, Hd] and V = x[:, :xw] W_xᵀ per transition [S·T·B, Hd] (x: ws.dec_x, XW columns;
// one strided-batched product over the runs each), the later layers as GEMMs over each run's pairs; leaves each
// layer's output in dw.act[l] [P, ·].
template <class T>
void pair_decoder_forward(Backend b, const Mlp& dec, const T* params, int d, const T* z, const PairRuns& runs, int XW,
                          int xw, int64_t P, BeliefLossWorkspace<T>& ws, PairDecoderWorkspace<T>& dw) {
  const MlpShape& sh = dec.shape();
  const int Hd = sh.sizes[1], DI = sh.sizes[0], S = runs.S;
  const int64_t R = runs.R, TB = runs.TB, ps = int64_t(runs.param_stride);
  dw.u.ensure(b, size_t(S * R) * Hd);
  dw.v.ensure(b, size_t(S * TB) * Hd);
  dw.act.resize(size_t(sh.layers()));
  for (int l = 0; l < sh.layers(); ++l) dw.act[size_t(l)].ensure(b, size_t(P) * sh.sizes[l + 1]);
  const T* w0 = params + dec.weight_offset(0);  // W_z and W_x are column blocks of W_0 [Hd, DI]
  gemm_strided_batched<T>(b, false, true, int(R), Hd, d, T(1), z, d, R * d, w0, DI, ps, T(0), dw.u.data(), Hd, R * Hd,
                          S);
  gemm_strided_batched<T>(b, false, true, int(TB), Hd, xw, T(1), ws.dec_x.data(), XW, TB * XW, w0 + d, DI, ps, T(0),
                          dw.v.data(), Hd, TB * Hd, S);
  with_activation(sh.layers() == 1 ? sh.output : sh.hidden, [&](auto a) {
    parallel_for_2d(
        b, P, Hd,
        PairFirstLayer<T, decltype(a)::value>{Hd, R, runs.param_stride, ws.pair_row.data(), ws.pair_tr.data(),
                                              dw.u.data(), dw.v.data(), params + dec.bias_offset(0), dw.act[0].data()});
  });
  for (int l = 1; l < sh.layers(); ++l)
    for (int s = 0; s < S; ++s) {  // each run's pairs (their counts differ)
      const int64_t p0 = runs.first(s);
      const T* ps_params = params + size_t(s) * runs.param_stride;
      if (runs.count(s) > 0)
        linear_forward(b, dw.act[size_t(l - 1)].data() + p0 * sh.sizes[l], ps_params + dec.weight_offset(l),
                       ps_params + dec.bias_offset(l), dw.act[size_t(l)].data() + p0 * sh.sizes[l + 1], runs.count(s),
                       sh.sizes[l], sh.sizes[l + 1], l == sh.layers() - 1 ? sh.output : sh.hidden);
    }
}

// Given dw.dy = d loss / d output [P, out]: adds the decoder's parameter gradients into grads (each run's into its
// part) and d loss / d z into ws.dz (which the caller zeroed).
template <class T>
void pair_decoder_backward(Backend b, const Mlp& dec, const T* params, T* grads, int d, const T* z,
                           const PairRuns& runs, int XW, int xw, int64_t P, BeliefLossWorkspace<T>& ws,
                           PairDecoderWorkspace<T>& dw) {
  const MlpShape& sh = dec.shape();
  const int DI = sh.sizes[0], S = runs.S;
  const int64_t R = runs.R, TB = runs.TB, ps = int64_t(runs.param_stride);
  int widest = 1;
  for (int l = 1; l <= sh.layers(); ++l) widest = sh.sizes[l] > widest ? sh.sizes[l] : widest;
  dw.ga.ensure(b, size_t(P) * widest);
  dw.gb.ensure(b, size_t(P) * widest);
  dw.du.ensure(b, size_t(S * R) * sh.sizes[1]);
  dw.dv.ensure(b, size_t(S * TB) * sh.sizes[1]);
  // layers L−1 .. 1 over the pairs (each run's own parameters); g ends as d loss / d (first layer's
  // pre-activation) [P, Hd]
  T *g = dw.ga.data(), *next = dw.gb.data();
  const T* dy = dw.dy.data();
  for (int l = sh.layers() - 1; l >= 0; --l) {
    const int n_in = sh.sizes[l], n_out = sh.sizes[l + 1];
    activation_backward(b, l == sh.layers() - 1 ? sh.output : sh.hidden, dw.act[size_t(l)].data(), dy, g, P * n_out);
    if (l == 0) break;
    for (int s = 0; s < S; ++s) {
      const int64_t p0 = runs.first(s);
      const int n = runs.count(s);
      if (n == 0) continue;
      const T* w = params + size_t(s) * runs.param_stride + dec.weight_offset(l);
      T* gs = grads + size_t(s) * runs.param_stride;
      linear_backward(b, dw.act[size_t(l - 1)].data() + p0 * n_in, w, g + p0 * n_out, static_cast<T*>(nullptr),
                      gs + dec.weight_offset(l), gs + dec.bias_offset(l), n, n_in, n_out, true);
      gemm<T>(b, false, false, n, n_in, n_out, T(1), g + p0 * n_out, n_out, w, n_in, T(0), next + p0 * n_in, n_in);
    }
    dy = next;
    std::swap(g, next);
  }
  // the first layer: fold the pairs back onto their latents (dU) and transitions (dV)
  const int Hd = sh.sizes[1];
  parallel_for(b, S * R, LatentGradSum<T>{Hd, ws.offset.data(), g, dw.du.data()});
  parallel_for(b, S * TB, TransitionGradSum<T>{Hd, ws.tr_offset.data(), ws.tr_pair.data(), g, dw.dv.data()});
  const T* w0 = params + dec.weight_offset(0);
  T* gw0 = grads + dec.weight_offset(0);
  // dW_z += dUᵀ z, dW_x += dVᵀ x, db += Σ_r dU, dz += dU W_z: one strided-batched product over the runs each
  gemm_strided_batched<T>(b, true, false, Hd, d, int(R), T(1), dw.du.data(), Hd, R * Hd, z, d, R * d, T(1), gw0, DI, ps,
                          S);
  gemm_strided_batched<T>(b, true, false, Hd, xw, int(TB), T(1), dw.dv.data(), Hd, TB * Hd, ws.dec_x.data(), XW,
                          TB * XW, T(1), gw0 + d, DI, ps, S);
  column_sums_seeds(b, dw.du.data(), int(R), Hd, grads + dec.bias_offset(0), ps, S, true);
  gemm_strided_batched<T>(b, false, false, int(R), d, Hd, T(1), dw.du.data(), Hd, R * Hd, w0, DI, ps, T(1),
                          ws.dz.data(), d, R * d, S);
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

namespace {

// The belief loss of S runs' batches (belief_loss: S = 1, and the caller's conditioning inputs or none).
template <class T>
std::vector<BeliefLossStats> belief_loss_impl(const BeliefModel<T>& m, const T* params, T* grads, size_t param_stride,
                                              const EpisodeBatchView<T>& ep, const DecodePlan& plan,
                                              const BeliefLossConfig& cfg, const T* cond, BeliefLossWorkspace<T>& ws) {
  DYN_NVTX_RANGE("belief_loss");
  const Backend b = m.backend();
  const BeliefShape& s = m.shape();
  const int B = ep.batch, steps = ep.steps, T1 = steps + 1, d = s.latent, S = ep.runs;
  const int qw = 2 * d + 1;
  const int64_t R = int64_t(T1) * B, TB = int64_t(steps) * B, P = plan.pairs;  // R, TB per run; P over all
  const int64_t SR = R * S;
  if (plan.runs() != S || plan.offset.size() != size_t(SR) + 1)
    throw std::invalid_argument("belief_loss: the decode plan covers " + std::to_string(plan.runs()) +
                                " runs' latents, the episodes " + std::to_string(S) + " (concat_plans)");
  if (ws.eps.size() < size_t(SR) * d) throw std::invalid_argument("belief_loss: ws.eps must hold [S, T+1, B, d] noise");
  episode_inputs(b, ep, ws, s.actions);
  // 1. encoder over the whole episodes, with the caller's conditioning inputs or those of the ground-truth sessions
  //    built in the same pass
  if (s.conditioning && !cond)
    m.encode_sessions(params, ep.obs, ws.prev_a.data(), ws.prev_a_value.data(), ws.prev_r.data(), ws.start.data(),
                      ep.send, T1, B, ws.enc, static_cast<T*>(nullptr), S, param_stride);
  else
    m.encode(params, ep.obs, ws.prev_a.data(), ws.prev_a_value.data(), ws.prev_r.data(), ws.start.data(),
             s.conditioning ? cond : nullptr, static_cast<const T*>(nullptr), T1, B, ws.enc, S, param_stride);
  const T* q = BeliefModel<T>::q(ws.enc);  // [S, R, 2d+1]
  // 2. the learned prior of every posterior, and one reparameterised sample per latent
  ws.prior_in.ensure(b, SR * 2 * d);
  ws.dprior_in.ensure(b, SR * 2 * d);
  ws.dprior.ensure(b, SR * 2 * d);
  ws.z.ensure(b, SR * d);
  ws.dz.ensure(b, SR * d);
  ws.dq.ensure(b, SR * qw);
  take_columns(b, q, qw, 0, SR, 2 * d, ws.prior_in.data());
  if (S == 1)
    m.prior.forward(b, params, ws.prior_in.data(), int(R), ws.prior);
  else
    m.prior.forward_seeds(b, params, param_stride, ws.prior_in.data(), S, int(R), ws.prior);
  const T* prior = ws.prior.act.back().data();
  {
    const T* eps = ws.eps.data();
    T* z = ws.z.data();
    parallel_for_2d(b, SR, d, SampleLatent<T>{d, qw, q, eps, z});
  }
  // 3. reconstruction over the planned (latent, transition) pairs, each decoder's first layer split by input
  //    (pair_decoder_forward), then d loss / d output = 2 (output − target) / B back to dz (pair_decoder_backward)
  ws.offset.assign(b, plan.offset);
  ws.pair_tr.assign(b, plan.pair_tr);
  ws.tr_offset.assign(b, plan.tr_offset);
  ws.tr_pair.assign(b, plan.tr_pair);
  ws.elbo.assign(b, plan.elbo);
  ws.run_pairs.assign(b, plan.run_pairs);
  std::vector<int64_t> state_values(plan.run_pairs);
  for (int64_t& v : state_values) v *= s.obs;
  ws.run_state_values.assign(b, state_values);
  ws.scalars.ensure(b, size_t(2 * S));
  ws.scalars.zero();
  ws.dq.zero();
  ws.dprior.zero();
  const PairRuns runs{S, R, TB, param_stride, &plan.run_pairs};
  if (P > 0) {
    // the pairs' rows and the transitions' decoder features [s_j, a_j, s_{j+1}]
    const int O = s.obs, XW = 2 * s.obs + s.actions;
    ws.pair_row.ensure(b, size_t(P));
    ws.dec_x.ensure(b, size_t(S * TB) * XW);
    parallel_for(b, SR, PairRows{ws.offset.data(), ws.pair_row.data()});
    parallel_for(b, S * TB,
                 TransitionFeatures<T>{B, s.obs, s.actions, TB, s.discrete_actions, ep.obs, ep.next_obs, ep.act,
                                       ep.act_value, ws.dec_x.data()});
    ws.dz.zero();
    const T two_over_b = T(2) / T(B);
    // the reward decoder on [z_t, s_j, a_j, s_{j+1}]: residuals r̂ − r, each run's sum of their squares, then
    // 2 (r̂ − r) / B
    PairDecoderWorkspace<T>& rd = ws.reward_dec;
    pair_decoder_forward(b, m.decoder, params, d, ws.z.data(), runs, XW, XW, P, ws, rd);
    rd.dy.ensure(b, size_t(P));
    parallel_for(b, P, PairResidual<T>{ws.pair_tr.data(), rd.act.back().data(), ep.rew, rd.dy.data()});
    T* dy = rd.dy.data();
    offset_sums_of_squares(b, dy, ws.run_pairs.data(), S, ws.scalars.data());
    parallel_for(b, P, Scale<T>{two_over_b, dy});
    pair_decoder_backward(b, m.decoder, params, grads, d, ws.z.data(), runs, XW, XW, P, ws, rd);
    // the state decoder on [z_t, s_j, a_j] → s_{j+1} (halfcheetah_wind_vel: the wind changes the dynamics)
    if (s.state_decoder) {
      PairDecoderWorkspace<T>& sd = ws.state_dec;
      pair_decoder_forward(b, m.state_decoder, params, d, ws.z.data(), runs, XW, O + s.actions, P, ws, sd);
      sd.dy.ensure(b, size_t(P) * O);
      parallel_for_2d(
          b, P, O,
          PairStateResidual<T>{B, O, TB, ws.pair_tr.data(), sd.act.back().data(), ep.obs, ep.next_obs, sd.dy.data()});
      T* sdy = sd.dy.data();
      const int64_t PO = P * O;
      offset_sums_of_squares(b, sdy, ws.run_state_values.data(), S, ws.scalars.data() + S);
      const T coef = two_over_b * T(cfg.state_weight);
      parallel_for(b, PO, Scale<T>{coef, sdy});
      pair_decoder_backward(b, m.state_decoder, params, grads, d, ws.z.data(), runs, XW, O + s.actions, P, ws, sd);
    }
    // 4. d loss / d q through the sample z = μ + exp(½ log σ²) ε
    const T *dz = ws.dz.data(), *eps = ws.eps.data();
    T* dq = ws.dq.data();
    parallel_for_2d(b, SR, d, SampleLatentBackward<T>{d, qw, q, eps, dz, dq});
  }
  // then the KL chain, consistency and BCE rows, each run's consistency term over its own valid pairs
  BeliefTermWeights<T> w;
  w.kl = T(cfg.kl_weight);
  w.termination = cfg.termination > 0 ? T(cfg.termination / (double(steps) * B)) : T(0);
  w.session_kl = cfg.session_kl;
  w.conditioning = cfg.conditioning;
  std::vector<T> consistency(static_cast<size_t>(S));
  for (int r = 0; r < S; ++r) {
    const int64_t pairs = plan.run_consistency_pairs[size_t(r)];
    consistency[size_t(r)] = cfg.beta > 0 && pairs > 0 ? T(cfg.beta / double(pairs)) : T(0);
  }
  ws.run_consistency.assign(b, consistency);
  ws.sums.ensure(b, size_t(S) * B * 3);
  {
    const int32_t* sid = ep.sid;
    const uint8_t* send = ep.send;
    T *dq = ws.dq.data(), *dprior = ws.dprior.data(), *sums = ws.sums.data();
    const uint8_t* elbo = ws.elbo.data();
    parallel_for(
        b, int64_t(S) * B,
        BeliefTermsRows<T>{B, steps, d, q, prior, sid, send, elbo, w, ws.run_consistency.data(), dq, dprior, sums});
  }
  // 5. the prior's gradient flows into its parameters and back into the posteriors it was computed from
  if (cfg.session_kl && cfg.conditioning) {
    ws.dprior_in.zero();
    m.prior.backward_seeds(b, params, grads, param_stride, ws.prior_in.data(), ws.dprior.data(), ws.dprior_in.data(), S,
                           ws.prior, true);
    T* dq = ws.dq.data();
    const T* dpi = ws.dprior_in.data();
    parallel_for_2d(b, SR, 2 * d, AddPriorInputGrad<T>{2 * d, qw, dpi, dq});
  }
  // 6. through the heads, the GRU, the trunk and the embeddings
  m.encode_backward(params, grads, ws.dq.data(), ws.enc);
  // statistics: one read of the per-trajectory sums and one of the reconstruction scalars
  const std::vector<T> sums = ws.sums.to_host();
  const std::vector<T> recon = ws.scalars.to_host();
  std::vector<BeliefLossStats> out(static_cast<size_t>(S));
  for (int r = 0; r < S; ++r) {
    BeliefLossStats& st = out[size_t(r)];
    const int64_t pairs = plan.run_pairs[size_t(r) + 1] - plan.run_pairs[size_t(r)];
    const int64_t cpairs = plan.run_consistency_pairs[size_t(r)];
    double kl = 0, hinge = 0, bce = 0;
    for (int i = 0; i < B; ++i) {
      const size_t k = 3 * (size_t(r) * B + size_t(i));
      kl += double(sums[k]);
      hinge += double(sums[k + 1]);
      bce += double(sums[k + 2]);
    }
    st.pairs = pairs;
    st.recon = pairs > 0 ? double(recon[size_t(r)]) / B : 0.0;
    st.state_recon = pairs > 0 && s.state_decoder ? double(recon[size_t(S + r)]) / B : 0.0;
    st.kl = kl / B;
    st.consistency = cpairs > 0 ? hinge / double(cpairs) : 0.0;
    st.bce = bce / (double(steps) * B);
    st.total = st.recon + cfg.state_weight * st.state_recon + cfg.kl_weight * kl +
               (consistency[size_t(r)] > T(0) ? cfg.beta * st.consistency : 0.0) +
               (w.termination > T(0) ? cfg.termination * st.bce : 0.0);
  }
  return out;
}

}  // namespace

template <class T>
BeliefLossStats belief_loss(const BeliefModel<T>& m, const T* params, T* grads, const EpisodeBatchView<T>& ep,
                            const DecodePlan& plan, const BeliefLossConfig& cfg, const T* cond,
                            BeliefLossWorkspace<T>& ws) {
  if (ep.runs != 1)
    throw std::invalid_argument("belief_loss: one run's episodes (belief_loss_runs takes a seed batch)");
  return belief_loss_impl(m, params, grads, 0, ep, plan, cfg, cond, ws)[0];
}

template <class T>
std::vector<BeliefLossStats> belief_loss_runs(const BeliefModel<T>& m, const T* params, T* grads, size_t param_stride,
                                              const EpisodeBatchView<T>& ep, const DecodePlan& plan,
                                              const BeliefLossConfig& cfg, BeliefLossWorkspace<T>& ws) {
  return belief_loss_impl(m, params, grads, param_stride, ep, plan, cfg, static_cast<const T*>(nullptr), ws);
}

#define DYN_INSTANTIATE_BELIEF(T)                                                                              \
  template class BeliefModel<T>;                                                                               \
  template void carry_final_belief<T>(Backend, const T*, const uint8_t*, int64_t, int, T*);                    \
  template void draw_belief_noise<T>(Backend, uint32_t, uint32_t, int64_t, T*);                                \
  template void ground_truth_conditioning<T>(const BeliefModel<T>&, const T*, const EpisodeBatchView<T>&,      \
                                             BeliefLossWorkspace<T>&);                                         \
  template BeliefLossStats belief_loss<T>(const BeliefModel<T>&, const T*, T*, const EpisodeBatchView<T>&,     \
                                          const DecodePlan&, const BeliefLossConfig&, const T*,                \
                                          BeliefLossWorkspace<T>&);                                            \
  template std::vector<BeliefLossStats> belief_loss_runs<T>(const BeliefModel<T>&, const T*, T*, size_t,       \
                                                            const EpisodeBatchView<T>&, const DecodePlan&,     \
                                                            const BeliefLossConfig&, BeliefLossWorkspace<T>&); \
  template void draw_belief_noise_runs<T>(Backend, const uint32_t*, int, uint32_t, int64_t, T*);
DYN_INSTANTIATE_BELIEF(float)
DYN_INSTANTIATE_BELIEF(double)

}  // namespace dyn
