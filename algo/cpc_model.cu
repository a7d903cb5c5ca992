// ContraBAR's encoder and CPC loss (algo/cpc_model.h): the pair classifiers through the decomposition of
// nn/cpc_pair.h, the gradients of the anchors' side per anchor and of the z side per z row (the plan's grouping), so
// both backends sum in the same order and nothing needs atomics.
#include <stdexcept>
#include <string>

#include "algo/cpc_model.h"
#include "kernels/copy.h"
#include "kernels/gemm.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "kernels/philox.h"
#include "kernels/reduce.h"
#include "nn/cpc_pair.h"
#include "nn/info_nce.h"
#include "nn/layer_norm.h"

namespace dyn {

namespace {

// Σ and Σ² of each row of x [n, w] into s [n, 2].
template <class T>
struct RowSums {
  const T* x;
  int w;
  T* s;
  DYN_HD void operator()(int64_t i) const {
    T s1 = T(0), s2 = T(0);
    for (int k = 0; k < w; ++k) {
      s1 += x[i * w + k];
      s2 += x[i * w + k] * x[i * w + k];
    }
    s[2 * i] = s1;
    s[2 * i + 1] = s2;
  }
};

// dx [n, w] += d/dx of the row sums: ds1 + 2 x ds2.
template <class T>
struct RowSumsBackward {
  const T *x, *ds;
  int w;
  T* dx;
  DYN_HD void operator()(int64_t i, int64_t k) const {
    dx[i * w + k] += ds[2 * i] + T(2) * x[i * w + k] * ds[2 * i + 1];
  }
};

// out [D1, w] = W1[:, c0 + j] · γ[c0 + j]: a column block of W1 with the LayerNorm gain folded in.
template <class T>
struct ScaledColumns {
  const T *w1, *gain;
  int D, c0, w;
  T* out;
  DYN_HD void operator()(int64_t m, int64_t j) const { out[m * w + j] = w1[m * D + c0 + j] * gain[c0 + j]; }
};

// c = W1 γ and d = W1 β + b1, one hidden unit per item.
template <class T>
struct GainBiasRows {
  const T *w1, *gain, *bias, *b1;
  int D;
  T *c, *d;
  DYN_HD void operator()(int64_t m) const {
    T sc = T(0), sd = b1[m];
    for (int k = 0; k < D; ++k) {
      sc += w1[m * D + k] * gain[k];
      sd += w1[m * D + k] * bias[k];
    }
    c[m] = sc;
    d[m] = sd;
  }
};

// The logits [A, J] of classifier k: pair i = a·J + j is (z_row[i], h row a); its activations [D1] into act, its μ
// and r into mu, r; 0 where the anchor has no positive.
template <class T>
struct PairForward {
  CpcPairMath<T> f;
  const int32_t* z_row;
  const uint8_t* valid;
  int J;
  T *logits, *act, *mu, *r;
  DYN_HD void operator()(int64_t i) const {
    if (!valid[i / J]) {
      logits[i] = T(0);
      return;
    }
    logits[i] = f.forward(z_row[i], i / J, act + i * f.D1, mu[i], r[i]);
  }
};

// The anchors' side of classifier k's backward: per anchor, over its J pairs, d P_h, the h row's d Σ and d Σ², and
// its sums of d w2, d d, d c, d b2 (part [A, 3·D1 + 1]); each pair's act becomes r · dpre (its share of d P_z) and
// its d Σ, d Σ² go to pair_ds [A·J, 2] for the z side.
template <class T>
struct AnchorBackward {
  CpcPairMath<T> f;
  const int32_t* z_row;
  const uint8_t* valid;
  const T *dlogits, *mu, *r;
  int J;
  T *act, *pair_ds, *dph, *dsh, *part;
  DYN_HD void operator()(int64_t a) const {
    const int D1 = f.D1;
    T* dp = dph + a * D1;
    T* pa = part + a * (3 * D1 + 1);
    for (int m = 0; m < D1; ++m) dp[m] = T(0);
    for (int m = 0; m < 3 * D1 + 1; ++m) pa[m] = T(0);
    T s1 = T(0), s2 = T(0);
    if (valid[a])
      for (int j = 0; j < J; ++j) {
        const int64_t p = a * J + j;
        const T g = dlogits[p], rp = r[p], mup = mu[p];
        T ds1, ds2;
        f.backward(
            z_row[p], a, g, mup, rp, act + p * D1,
            [&](int m, T am, T dpre) {
              dp[m] += rp * dpre;
              pa[m] += g * am;
              pa[D1 + m] += dpre;
              pa[2 * D1 + m] -= rp * mup * dpre;
            },
            ds1, ds2);
        pa[3 * D1] += g;
        pair_ds[2 * p] = ds1;
        pair_ds[2 * p + 1] = ds2;
        s1 += ds1;
        s2 += ds2;
      }
    dsh[2 * a] = s1;
    dsh[2 * a + 1] = s2;
  }
};

// The z side of classifier k's backward: per z row, the sums of its pairs' r · dpre (d P_z) and d Σ, d Σ².
template <class T>
struct ZRowBackward {
  int D1;
  const int32_t *offset, *pairs;  // this k's grouping: [R + 1], pair indices a·J + j
  const T *act, *pair_ds;         // after AnchorBackward: [A·J, D1] r · dpre, [A·J, 2]
  T *dpz, *dsz;
  DYN_HD void operator()(int64_t r) const {
    T* dp = dpz + r * D1;
    for (int m = 0; m < D1; ++m) dp[m] = T(0);
    T s1 = T(0), s2 = T(0);
    for (int32_t q = offset[r]; q < offset[r + 1]; ++q) {
      const int64_t p = pairs[q];
      for (int m = 0; m < D1; ++m) dp[m] += act[p * D1 + m];
      s1 += pair_ds[2 * p];
      s2 += pair_ds[2 * p + 1];
    }
    dsz[2 * r] = s1;
    dsz[2 * r + 1] = s2;
  }
};

// Column sums of part [A, w] into sum [w].
template <class T>
struct ColumnSums {
  const T* x;
  int64_t rows;
  int w;
  T* sum;
  DYN_HD void operator()(int64_t c) const {
    T s = T(0);
    for (int64_t i = 0; i < rows; ++i) s += x[i * w + c];
    sum[c] = s;
  }
};

// Classifier k's first layer and LayerNorm gradients from dW̃ = [dwz | dwh] [D1, D], dc and dd [D1]:
// dW1[m, j] += (dW̃[m, j] + dc[m]) γ[j] + dd[m] β[j].
template <class T>
struct FirstLayerGrads {
  const T *dwz, *dwh, *gain, *bias, *dc, *dd;
  int D, E, H;
  T* dw1;
  DYN_HD void operator()(int64_t m, int64_t j) const {
    const T dwt = j < E ? dwz[m * E + j] : dwh[m * H + (j - E)];
    dw1[m * D + j] += (dwt + dc[m]) * gain[j] + dd[m] * bias[j];
  }
};

// dγ[j] += Σ_m W1[m, j] (dW̃[m, j] + dc[m]); dβ[j] += Σ_m W1[m, j] dd[m].
template <class T>
struct GainBiasGrads {
  const T *w1, *dwz, *dwh, *dc, *dd;
  int D, D1, E, H;
  T *dgain, *dbias;
  DYN_HD void operator()(int64_t j) const {
    T sg = T(0), sb = T(0);
    for (int m = 0; m < D1; ++m) {
      const T dwt = j < E ? dwz[m * E + j] : dwh[m * H + (j - E)];
      sg += w1[m * D + j] * (dwt + dc[m]);
      sb += w1[m * D + j] * dd[m];
    }
    dgain[j] += sg;
    dbias[j] += sb;
  }
};

// db1 += dd, dw2 += Σ g a, db2 += Σ g from the column sums of part.
template <class T>
struct OutputGrads {
  const T* sum;  // [3·D1 + 1]: dw2, dd, dc, db2
  int D1;
  T *dw2, *db1, *db2;
  DYN_HD void operator()(int64_t m) const {
    dw2[m] += sum[m];
    db1[m] += sum[D1 + m];
    if (m == 0) db2[0] += sum[3 * D1];
  }
};

template <class T>
struct AddInto {
  const T* src;
  T* dst;
  DYN_HD void operator()(int64_t i) const { dst[i] += src[i]; }
};

// Anchor weights: 1 / (valid anchors) where the anchor has a positive.
template <class T>
struct AnchorWeights {
  const uint8_t* valid;
  T inv;
  T* w;
  DYN_HD void operator()(int64_t i) const { w[i] = valid[i] ? inv : T(0); }
};

// floor(u · n / 2³²): a uniform integer in [0, n) from 32 random bits.
uint32_t below(uint32_t u, uint32_t n) { return uint32_t((uint64_t(u) * n) >> 32); }

}  // namespace

CpcPlan plan_cpc(int steps, int batch, int lookahead, int negatives, uint32_t seed, uint32_t step) {
  if (batch < 2)
    throw std::invalid_argument("contrabar: CPC negatives come from the other trajectories of a batch; got " +
                                std::to_string(batch) + " episode(s) per CPC step, need at least 2");
  if (steps < 1 || lookahead < 1 || negatives < 0)
    throw std::invalid_argument("plan_cpc: steps and lookahead must be >= 1 and negatives >= 0");
  CpcPlan p;
  p.steps = steps;
  p.batch = batch;
  p.lookahead = lookahead;
  p.per_anchor = negatives + 1;
  const int J = p.per_anchor;
  const int64_t A = p.anchors(), R = p.rows();
  p.z_row.assign(size_t(lookahead * A * J), 0);
  p.valid.assign(size_t(lookahead * A), 0);
  p.z_offset.assign(size_t(lookahead * (R + 1)), 0);
  for (int k = 1; k <= lookahead; ++k) {
    const int64_t kb = int64_t(k - 1) * A;
    for (int64_t a = 0; a < A; ++a) {
      const int t = int(a / batch), b = int(a % batch);
      const bool v = t + k <= steps;
      p.valid[size_t(kb + a)] = v;
      p.valid_anchors += v;
      int32_t* zr = p.z_row.data() + (kb + a) * J;
      zr[0] = v ? int32_t((t + k) * batch + b) : int32_t(a);
      Philox rng(seed, kStreamCpcNegatives, uint32_t(a), step, uint32_t(k));
      for (int j = 1; j < J; ++j) {
        const uint32_t other = (uint32_t(b) + 1 + below(rng.next_u32(), uint32_t(batch - 1))) % uint32_t(batch);
        const uint32_t tau = 1 + below(rng.next_u32(), uint32_t(steps));
        zr[j] = int32_t(tau * uint32_t(batch) + other);
      }
    }
  }
  // the valid pairs grouped by (k, z row), each group in increasing pair index: a counting sort
  for (int k = 0; k < lookahead; ++k) {
    int32_t* off = p.z_offset.data() + int64_t(k) * (R + 1);
    for (int64_t a = 0; a < A; ++a)
      if (p.valid[size_t(int64_t(k) * A + a)])
        for (int j = 0; j < J; ++j) ++off[p.z_row[size_t((int64_t(k) * A + a) * J + j)] + 1];
    off[0] = int32_t(p.z_pair.size());
    for (int64_t r = 0; r < R; ++r) off[r + 1] += off[r];
    std::vector<int32_t> fill(off, off + R);
    p.z_pair.resize(size_t(off[R]));
    for (int64_t a = 0; a < A; ++a)
      if (p.valid[size_t(int64_t(k) * A + a)])
        for (int j = 0; j < J; ++j)
          p.z_pair[size_t(fill[size_t(p.z_row[size_t((int64_t(k) * A + a) * J + j)])]++)] = int32_t(a * J + j);
  }
  return p;
}

template <class T>
CpcModel<T>::CpcModel(Backend b, const CpcShape& shape, ParamLayout& layout) : b_(b), s_(shape) {
  const int E = s_.embed(), D = s_.pair_in(), D1 = s_.classifier_hidden();
  emb_s = Mlp({{s_.obs, s_.embed_s}, Activation::elu, Activation::elu}, layout, "cpc.emb_s");
  emb_a = Mlp({{s_.actions, s_.embed_a}, Activation::elu, Activation::elu}, layout, "cpc.emb_a");
  emb_r = Mlp({{1, s_.embed_r}, Activation::elu, Activation::elu}, layout, "cpc.emb_r");
  ln_gain = layout.add("cpc.ln.gain", {E}, Init::constant, 1.0);
  ln_bias = layout.add("cpc.ln.bias", {E}, Init::zeros);
  gru = Gru(E, s_.hidden, layout, "cpc.gru");
  for (int k = 1; k <= s_.lookahead; ++k) {
    const std::string p = "cpc.cls" + std::to_string(k);
    Classifier c;
    c.ln_gain = layout.add(p + ".ln_gain", {D}, Init::constant, 1.0);
    c.ln_bias = layout.add(p + ".ln_bias", {D}, Init::zeros);
    c.w1 = layout.add(p + ".w1", {D1, D}, Init::orthogonal, 1.0);
    c.b1 = layout.add(p + ".b1", {D1}, Init::zeros);
    c.w2 = layout.add(p + ".w2", {1, D1}, Init::orthogonal, 1.0);
    c.b2 = layout.add(p + ".b2", {1}, Init::zeros);
    cls.push_back(c);
  }
}

template <class T>
void CpcModel<T>::encode(const T* params, const T* obs, const int32_t* prev_a, const T* prev_a_value, const T* prev_r,
                         const uint8_t* start, const T* h0, int steps, int batch, CpcEncoderWorkspace<T>& ws, int seeds,
                         size_t param_stride) const {
  DYN_NVTX_RANGE("cpc_encode");
  const int64_t R = int64_t(steps) * batch;  // per seed
  const int64_t rows = R * seeds;            // [S, R, ·]
  const int O = s_.obs, A = s_.actions, E = s_.embed();
  ws.rows = int(rows);
  ws.xs.ensure(b_, size_t(rows) * O);
  ws.xa.ensure(b_, size_t(rows) * A);
  ws.xr.ensure(b_, size_t(rows));
  ws.reset.ensure(b_, size_t(rows));
  ws.e.ensure(b_, size_t(rows) * E);
  ws.x.ensure(b_, size_t(rows) * E);
  ws.mean.ensure(b_, size_t(rows));
  ws.rstd.ensure(b_, size_t(rows));
  encoder_inputs(b_, O, A, s_.discrete_actions, obs, prev_a, prev_a_value, prev_r, start, rows, ws.xs.data(),
                 ws.xa.data(), ws.xr.data(), ws.reset.data());
  auto embed = [&](const Mlp& mlp, const T* x, MlpWorkspace<T>& w) {
    if (seeds == 1)
      mlp.forward(b_, params, x, int(R), w);
    else
      mlp.forward_seeds(b_, params, param_stride, x, seeds, int(R), w);
  };
  embed(emb_s, ws.xs.data(), ws.es);
  embed(emb_a, ws.xa.data(), ws.ea);
  embed(emb_r, ws.xr.data(), ws.er);
  place_columns(b_, ws.es.act.back().data(), rows, s_.embed_s, ws.e.data(), E, 0);
  place_columns(b_, ws.ea.act.back().data(), rows, s_.embed_a, ws.e.data(), E, s_.embed_s);
  place_columns(b_, ws.er.act.back().data(), rows, s_.embed_r, ws.e.data(), E, s_.embed_s + s_.embed_a);
  for (int sd = 0; sd < seeds; ++sd) {  // each run's rows with its gain and bias
    const T* p = params + size_t(sd) * param_stride;
    const int64_t o = sd * R;
    layer_norm_forward(b_, ws.e.data() + o * E, p + ln_gain, p + ln_bias, ws.x.data() + o * E, ws.mean.data() + o,
                       ws.rstd.data() + o, R, E);
  }
  const T* none = nullptr;
  if (seeds == 1)
    gru.forward(b_, params, ws.x.data(), ws.reset.data(), none, h0, steps, batch, ws.gru);
  else
    gru.forward_seeds(b_, params, param_stride, ws.x.data(), ws.reset.data(), none, h0, seeds, steps, batch, ws.gru);
}

template <class T>
void CpcModel<T>::encode_backward(const T* params, T* grads, const T* dh, const T* dx_extra,
                                  CpcEncoderWorkspace<T>& ws) const {
  DYN_NVTX_RANGE("cpc_encode_backward");
  const int64_t R = ws.rows;
  const int E = s_.embed();
  ws.dx.ensure(b_, size_t(R) * E);
  ws.de.ensure(b_, size_t(R) * E);
  ws.d_es.ensure(b_, size_t(R) * s_.embed_s);
  ws.d_ea.ensure(b_, size_t(R) * s_.embed_a);
  ws.d_er.ensure(b_, size_t(R) * s_.embed_r);
  gru.backward(b_, params, grads, ws.x.data(), ws.reset.data(), dh, 0, ws.dx.data(), static_cast<T*>(nullptr),
               static_cast<T*>(nullptr), ws.gru);
  if (dx_extra) parallel_for(b_, R * E, AddInto<T>{dx_extra, ws.dx.data()});
  layer_norm_backward(b_, ws.e.data(), params + ln_gain, ws.mean.data(), ws.rstd.data(), ws.dx.data(), ws.de.data(),
                      grads + ln_gain, grads + ln_bias, R, E);
  take_columns(b_, ws.de.data(), E, 0, R, s_.embed_s, ws.d_es.data());
  take_columns(b_, ws.de.data(), E, s_.embed_s, R, s_.embed_a, ws.d_ea.data());
  take_columns(b_, ws.de.data(), E, s_.embed_s + s_.embed_a, R, s_.embed_r, ws.d_er.data());
  emb_s.backward(b_, params, grads, ws.xs.data(), ws.d_es.data(), static_cast<T*>(nullptr), ws.es, true);
  emb_a.backward(b_, params, grads, ws.xa.data(), ws.d_ea.data(), static_cast<T*>(nullptr), ws.ea, true);
  emb_r.backward(b_, params, grads, ws.xr.data(), ws.d_er.data(), static_cast<T*>(nullptr), ws.er, true);
}

template <class T>
CpcLossStats CpcModel<T>::loss(const T* params, T* grads, const EpisodeBatchView<T>& ep, const CpcPlan& plan,
                               CpcLossWorkspace<T>& ws) const {
  DYN_NVTX_RANGE("cpc_loss");
  const Backend b = b_;
  const int B = ep.batch, Tn = ep.steps, K = s_.lookahead, J = s_.logits();
  const int E = s_.embed(), H = s_.hidden, D = s_.pair_in(), D1 = s_.classifier_hidden();
  if (plan.steps != Tn || plan.batch != B || plan.lookahead != K || plan.per_anchor != J)
    throw std::invalid_argument("CpcModel::loss: the plan was made for another batch or shape");
  const int64_t R = plan.rows(), A = plan.anchors();
  // 1. the encoder over whole episodes: x [R, E] (the z rows) and h [R, H] (the anchors are its first A rows)
  ws.prev_a.ensure(b, size_t(R));
  ws.prev_a_value.ensure(b, size_t(R) * s_.actions);
  ws.prev_r.ensure(b, size_t(R));
  ws.start.ensure(b, size_t(R));
  episode_inputs(b, ep, s_.actions, ws.prev_a.data(), ws.prev_a_value.data(), ws.prev_r.data(), ws.start.data());
  encode(params, ep.obs, ws.prev_a.data(), ep.act_value ? ws.prev_a_value.data() : static_cast<const T*>(nullptr),
         ws.prev_r.data(), ws.start.data(), static_cast<const T*>(nullptr), Tn + 1, B, ws.enc);
  const T* x = ws.enc.x.data();
  const T* h = ws.enc.gru.h.data();
  // 2. the plan and the row sums
  ws.z_row.assign(b, plan.z_row);
  ws.valid.assign(b, plan.valid);
  ws.z_offset.assign(b, plan.z_offset);
  ws.z_pair.assign(b, plan.z_pair.empty() ? std::vector<int32_t>{0} : plan.z_pair);
  ws.weight.ensure(b, size_t(K) * A);
  const int64_t nvalid = plan.valid_anchors;
  parallel_for(b, int64_t(K) * A,
               AnchorWeights<T>{ws.valid.data(), nvalid > 0 ? T(1) / T(nvalid) : T(0), ws.weight.data()});
  ws.sz.ensure(b, size_t(R) * 2);
  ws.sh.ensure(b, size_t(A) * 2);
  parallel_for(b, R, RowSums<T>{x, E, ws.sz.data()});
  parallel_for(b, A, RowSums<T>{h, H, ws.sh.data()});
  ws.wz.ensure(b, size_t(K) * D1 * E);
  ws.wh.ensure(b, size_t(K) * D1 * H);
  ws.c.ensure(b, size_t(K) * D1);
  ws.d.ensure(b, size_t(K) * D1);
  ws.pz.ensure(b, size_t(K) * R * D1);
  ws.ph.ensure(b, size_t(K) * A * D1);
  ws.logits.ensure(b, size_t(K) * A * J);
  ws.dlogits.ensure(b, size_t(K) * A * J);
  ws.loss.ensure(b, size_t(K) * A);
  ws.hit.ensure(b, size_t(K) * A);
  ws.act.ensure(b, size_t(A) * J * D1);
  ws.pair_mu.ensure(b, size_t(A) * J);
  ws.pair_r.ensure(b, size_t(A) * J);
  ws.pair_ds.ensure(b, size_t(A) * J * 2);
  ws.dpz.ensure(b, size_t(R) * D1);
  ws.dph.ensure(b, size_t(A) * D1);
  ws.dsz.ensure(b, size_t(R) * 2);
  ws.dsh.ensure(b, size_t(A) * 2);
  ws.part.ensure(b, size_t(A) * (3 * D1 + 1));
  ws.part_sum.ensure(b, size_t(3 * D1 + 1));
  ws.dwz.ensure(b, size_t(D1) * E);
  ws.dwh.ensure(b, size_t(D1) * H);
  ws.dx.ensure(b, size_t(R) * E);
  ws.dh.ensure(b, size_t(R) * H);
  ws.dx.zero();
  ws.dh.zero();
  // one classifier at a time: forward (keeping each pair's activations), InfoNCE over its rows, backward
  for (int k = 0; k < K; ++k) {
    const Classifier& c = cls[size_t(k)];
    T* wz = ws.wz.data() + int64_t(k) * D1 * E;
    T* wh = ws.wh.data() + int64_t(k) * D1 * H;
    parallel_for_2d(b, D1, E, ScaledColumns<T>{params + c.w1, params + c.ln_gain, D, 0, E, wz});
    parallel_for_2d(b, D1, H, ScaledColumns<T>{params + c.w1, params + c.ln_gain, D, E, H, wh});
    parallel_for(b, D1,
                 GainBiasRows<T>{params + c.w1, params + c.ln_gain, params + c.ln_bias, params + c.b1, D,
                                 ws.c.data() + int64_t(k) * D1, ws.d.data() + int64_t(k) * D1});
    gemm<T>(b, false, true, int(R), D1, E, T(1), x, E, wz, E, T(0), ws.pz.data() + int64_t(k) * R * D1, D1);
    gemm<T>(b, false, true, int(A), D1, H, T(1), h, H, wh, H, T(0), ws.ph.data() + int64_t(k) * A * D1, D1);
    const CpcPairMath<T> f{D,
                           D1,
                           ws.pz.data() + int64_t(k) * R * D1,
                           ws.ph.data() + int64_t(k) * A * D1,
                           ws.sz.data(),
                           ws.sh.data(),
                           ws.c.data() + int64_t(k) * D1,
                           ws.d.data() + int64_t(k) * D1,
                           params + c.w2,
                           params + c.b2};
    const int32_t* z_row = ws.z_row.data() + int64_t(k) * A * J;
    const uint8_t* valid = ws.valid.data() + int64_t(k) * A;
    T* logits = ws.logits.data() + int64_t(k) * A * J;
    T* dl = ws.dlogits.data() + int64_t(k) * A * J;
    parallel_for(b, A * J,
                 PairForward<T>{f, z_row, valid, J, logits, ws.act.data(), ws.pair_mu.data(), ws.pair_r.data()});
    // InfoNCE over this k's rows, weighted to the mean over every valid (k, anchor) row
    info_nce_batch(b, static_cast<const T*>(logits), static_cast<const uint8_t*>(nullptr),
                   ws.weight.data() + int64_t(k) * A, ws.loss.data() + int64_t(k) * A, ws.hit.data() + int64_t(k) * A,
                   dl, A, J);
    parallel_for(b, A,
                 AnchorBackward<T>{f, z_row, valid, dl, ws.pair_mu.data(), ws.pair_r.data(), J, ws.act.data(),
                                   ws.pair_ds.data(), ws.dph.data(), ws.dsh.data(), ws.part.data()});
    parallel_for(b, R,
                 ZRowBackward<T>{D1, ws.z_offset.data() + int64_t(k) * (R + 1), ws.z_pair.data(), ws.act.data(),
                                 ws.pair_ds.data(), ws.dpz.data(), ws.dsz.data()});
    // dx += dP_z W̃_z + the row sums' part; dW̃_z = dP_zᵀ x; the same for the anchors' h rows
    gemm<T>(b, false, false, int(R), E, D1, T(1), ws.dpz.data(), D1, wz, E, T(1), ws.dx.data(), E);
    parallel_for_2d(b, R, E, RowSumsBackward<T>{x, ws.dsz.data(), E, ws.dx.data()});
    gemm<T>(b, true, false, D1, E, int(R), T(1), ws.dpz.data(), D1, x, E, T(0), ws.dwz.data(), E);
    gemm<T>(b, false, false, int(A), H, D1, T(1), ws.dph.data(), D1, wh, H, T(1), ws.dh.data(), H);
    parallel_for_2d(b, A, H, RowSumsBackward<T>{h, ws.dsh.data(), H, ws.dh.data()});
    gemm<T>(b, true, false, D1, H, int(A), T(1), ws.dph.data(), D1, h, H, T(0), ws.dwh.data(), H);
    parallel_for(b, 3 * D1 + 1, ColumnSums<T>{ws.part.data(), A, 3 * D1 + 1, ws.part_sum.data()});
    const T* sum = ws.part_sum.data();
    parallel_for_2d(b, D1, D,
                    FirstLayerGrads<T>{ws.dwz.data(), ws.dwh.data(), params + c.ln_gain, params + c.ln_bias,
                                       sum + 2 * D1, sum + D1, D, E, H, grads + c.w1});
    parallel_for(b, D,
                 GainBiasGrads<T>{params + c.w1, ws.dwz.data(), ws.dwh.data(), sum + 2 * D1, sum + D1, D, D1, E, H,
                                  grads + c.ln_gain, grads + c.ln_bias});
    parallel_for(b, D1, OutputGrads<T>{sum, D1, grads + c.w2, grads + c.b1, grads + c.b2});
  }
  // 5. through the encoder: h's gradient through the GRU, x's (as z) joining it before the LayerNorm
  encode_backward(params, grads, ws.dh.data(), ws.dx.data(), ws.enc);
  // statistics: the loss sum on the backend, the hits read once
  ws.scalars.ensure(b, 1);
  reduce_sum(b, ws.loss.data(), size_t(K) * A, ws.scalars.data());
  CpcLossStats st;
  st.loss = double(ws.scalars.to_host()[0]);
  const std::vector<uint8_t> hit = ws.hit.to_host();
  st.accuracy_k.assign(size_t(K), 0.0);
  double hits = 0;
  for (int k = 0; k < K; ++k) {
    int64_t n = 0, hk = 0;
    for (int64_t a = 0; a < A; ++a) {
      n += plan.valid[size_t(int64_t(k) * A + a)];
      hk += hit[size_t(int64_t(k) * A + a)];
    }
    st.accuracy_k[size_t(k)] = n > 0 ? double(hk) / double(n) : 0.0;
    hits += double(hk);
  }
  st.accuracy = nvalid > 0 ? hits / double(nvalid) : 0.0;
  return st;
}

template class CpcModel<float>;
template class CpcModel<double>;

}  // namespace dyn
