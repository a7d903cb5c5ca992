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

// The first `per` rows of each run's block of `block` rows (the anchors [A] of each run's latents [R]): item i's row
// of the seed-major array (per = block: every row, i itself).
struct RunRows {
  int64_t per, block;
  DYN_HD int64_t row(int64_t i) const { return per == block ? i : (i / per) * block + i % per; }
};

// Σ and Σ² of each row of x [·, w] (item i: row rows.row(i)) into s [n, 2].
template <class T>
struct RowSums {
  const T* x;
  int w;
  RunRows rows;
  T* s;
  DYN_HD void operator()(int64_t i) const {
    const T* xi = x + rows.row(i) * w;
    T s1 = T(0), s2 = T(0);
    for (int k = 0; k < w; ++k) {
      s1 += xi[k];
      s2 += xi[k] * xi[k];
    }
    s[2 * i] = s1;
    s[2 * i + 1] = s2;
  }
};

// dx [·, w] += d/dx of the row sums: ds1 + 2 x ds2 (item i: row rows.row(i) of x and dx).
template <class T>
struct RowSumsBackward {
  const T *x, *ds;
  int w;
  RunRows rows;
  T* dx;
  DYN_HD void operator()(int64_t i, int64_t k) const {
    const int64_t r = rows.row(i);
    dx[r * w + k] += ds[2 * i] + T(2) * x[r * w + k] * ds[2 * i + 1];
  }
};

// Classifier k's pair math for run s of a seed batch: the z and anchor rows are indexed over all runs, its W1 γ and
// W1 β + b1 are row s of [S, D1], w2 and b2 its parameters'.
template <class T>
struct RunPairMath {
  CpcPairMath<T> f;
  size_t param_stride;
  DYN_HD CpcPairMath<T> of(int64_t s) const {
    CpcPairMath<T> g = f;
    g.c += s * f.D1;
    g.d += s * f.D1;
    g.w2 += size_t(s) * param_stride;
    g.b2 += size_t(s) * param_stride;
    return g;
  }
};

// out [S, D1, w] = W1[:, c0 + j] · γ[c0 + j] of each run (row sm = s·D1 + m): a column block of W1 with the
// LayerNorm gain folded in.
template <class T>
struct ScaledColumns {
  const T *w1, *gain;
  size_t param_stride;
  int D, D1, c0, w;
  T* out;
  DYN_HD void operator()(int64_t sm, int64_t j) const {
    const size_t p = size_t(sm / D1) * param_stride;
    const int64_t m = sm % D1;
    out[sm * w + j] = w1[p + m * D + c0 + j] * gain[p + c0 + j];
  }
};

// c = W1 γ and d = W1 β + b1 [S, D1], one hidden unit of one run per item.
template <class T>
struct GainBiasRows {
  const T *w1, *gain, *bias, *b1;
  size_t param_stride;
  int D, D1;
  T *c, *d;
  DYN_HD void operator()(int64_t sm) const {
    const size_t p = size_t(sm / D1) * param_stride;
    const int64_t m = sm % D1;
    T sc = T(0), sd = b1[p + m];
    for (int k = 0; k < D; ++k) {
      sc += w1[p + m * D + k] * gain[p + k];
      sd += w1[p + m * D + k] * bias[p + k];
    }
    c[sm] = sc;
    d[sm] = sd;
  }
};

// The logits [A, J] of classifier k: pair i = a·J + j is (z_row[i], h row a); its activations [D1] into act, its μ
// and r into mu, r; 0 where the anchor has no positive.
template <class T>
struct PairForward {
  RunPairMath<T> f;
  const int32_t* z_row;
  const uint8_t* valid;
  int J;
  int64_t A;  // anchors per run
  T *logits, *act, *mu, *r;
  DYN_HD void operator()(int64_t i) const {
    if (!valid[i / J]) {
      logits[i] = T(0);
      return;
    }
    logits[i] = f.of(i / J / A).forward(z_row[i], i / J, act + i * f.f.D1, mu[i], r[i]);
  }
};

// The anchors' side of classifier k's backward: per anchor, over its J pairs, d P_h, the h row's d Σ and d Σ², and
// its sums of d w2, d d, d c, d b2 (part [A, 3·D1 + 1]); each pair's act becomes r · dpre (its share of d P_z) and
// its d Σ, d Σ² go to pair_ds [A·J, 2] for the z side.
template <class T>
struct AnchorBackward {
  RunPairMath<T> fr;
  const int32_t* z_row;
  const uint8_t* valid;
  const T *dlogits, *mu, *r;
  int J;
  int64_t A;  // anchors per run
  T *act, *pair_ds, *dph, *dsh, *part;
  DYN_HD void operator()(int64_t a) const {
    const CpcPairMath<T> f = fr.of(a / A);
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

// Column sums of each run's part [A, w] (of [S·A, w]) into sum [S, w].
template <class T>
struct ColumnSums {
  const T* x;
  int64_t rows;
  int w;
  T* sum;
  DYN_HD void operator()(int64_t sc) const {
    const int64_t run = sc / w, c = sc % w;
    const T* xr = x + run * rows * w;
    T s = T(0);
    for (int64_t i = 0; i < rows; ++i) s += xr[i * w + c];
    sum[sc] = s;
  }
};

// Classifier k's first layer and LayerNorm gradients from dW̃ = [dwz | dwh] [D1, D], dc and dd [D1]:
// dW1[m, j] += (dW̃[m, j] + dc[m]) γ[j] + dd[m] β[j].
// Run s's classifier k gradients from its dW̃ = [dwz | dwh] [D1, D] and its sums of part (dc, dd) [3·D1 + 1]; run s's
// parameters and gradients at s · param_stride.
template <class T>
struct RunClassifierGrads {
  const T *dwz, *dwh, *sum;  // [S, D1, E], [S, D1, H], [S, 3·D1 + 1]: dw2, dd, dc, db2
  int D, D1, E, H;
  size_t param_stride;
  DYN_HD const T* dw_tilde(int64_t s, int64_t m, int64_t j) const {
    return j < E ? dwz + (s * D1 + m) * E + j : dwh + (s * D1 + m) * H + (j - E);
  }
  DYN_HD const T* dd(int64_t s) const { return sum + s * (3 * D1 + 1) + D1; }
  DYN_HD const T* dc(int64_t s) const { return sum + s * (3 * D1 + 1) + 2 * D1; }
};

// dW1[m, j] += (dW̃[m, j] + dc[m]) γ[j] + dd[m] β[j], one (run, m, j) per item (row sm = s·D1 + m).
template <class T>
struct FirstLayerGrads {
  RunClassifierGrads<T> g;
  const T *gain, *bias;
  T* dw1;
  DYN_HD void operator()(int64_t sm, int64_t j) const {
    const int64_t s = sm / g.D1, m = sm % g.D1;
    const size_t p = size_t(s) * g.param_stride;
    dw1[p + m * g.D + j] += (*g.dw_tilde(s, m, j) + g.dc(s)[m]) * gain[p + j] + g.dd(s)[m] * bias[p + j];
  }
};

// dγ[j] += Σ_m W1[m, j] (dW̃[m, j] + dc[m]); dβ[j] += Σ_m W1[m, j] dd[m], one (run, j) per item.
template <class T>
struct GainBiasGrads {
  RunClassifierGrads<T> g;
  const T* w1;
  T *dgain, *dbias;
  DYN_HD void operator()(int64_t sj) const {
    const int64_t s = sj / g.D, j = sj % g.D;
    const size_t p = size_t(s) * g.param_stride;
    T sg = T(0), sb = T(0);
    for (int m = 0; m < g.D1; ++m) {
      sg += w1[p + m * g.D + j] * (*g.dw_tilde(s, m, j) + g.dc(s)[m]);
      sb += w1[p + m * g.D + j] * g.dd(s)[m];
    }
    dgain[p + j] += sg;
    dbias[p + j] += sb;
  }
};

// db1 += dd, dw2 += Σ g a, db2 += Σ g from the column sums of each run's part, one (run, m) per item.
template <class T>
struct OutputGrads {
  const T* sum;  // [S, 3·D1 + 1]: dw2, dd, dc, db2
  int D1;
  size_t param_stride;
  T *dw2, *db1, *db2;
  DYN_HD void operator()(int64_t sm) const {
    const int64_t s = sm / D1, m = sm % D1;
    const size_t p = size_t(s) * param_stride;
    const T* sr = sum + s * (3 * D1 + 1);
    dw2[p + m] += sr[m];
    db1[p + m] += sr[D1 + m];
    if (m == 0) db2[p] += sr[3 * D1];
  }
};

// The losses [K, S·A] run-major [S, K, A], so each run's sum is one segment.
template <class T>
struct LossesByRun {
  const T* loss;
  int64_t S, K, A;
  T* out;
  DYN_HD void operator()(int64_t i) const {
    const int64_t s = i / (K * A), k = (i / A) % K, a = i % A;
    out[i] = loss[(k * S + s) * A + a];
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

CpcPlan concat_cpc_plans(const std::vector<CpcPlan>& plans) {
  if (plans.empty()) throw std::invalid_argument("concat_cpc_plans: no plans");
  const CpcPlan& first = plans[0];
  const int S = int(plans.size()), K = first.lookahead, J = first.per_anchor;
  const int64_t A = first.anchors(), R = first.rows();
  for (const CpcPlan& p : plans)
    if (p.runs != 1 || p.steps != first.steps || p.batch != first.batch || p.lookahead != K || p.per_anchor != J)
      throw std::invalid_argument("concat_cpc_plans: every plan must be one run's of one shape");
  CpcPlan all = first;
  all.runs = S;
  all.z_row.clear();
  all.valid.clear();
  all.z_offset.clear();
  all.z_pair.clear();
  all.valid_anchors = 0;
  for (int k = 0; k < K; ++k)
    for (int s = 0; s < S; ++s) {  // k's block: run s's anchors, their z rows shifted to run s's block
      const CpcPlan& p = plans[size_t(s)];
      for (int64_t i = int64_t(k) * A * J; i < int64_t(k + 1) * A * J; ++i)
        all.z_row.push_back(int32_t(s * R) + p.z_row[size_t(i)]);
      all.valid.insert(all.valid.end(), p.valid.begin() + long(k * A), p.valid.begin() + long((k + 1) * A));
    }
  for (int k = 0; k < K; ++k) {  // k's grouping over every run's z rows: run s's pairs at s·A·J + · within k
    all.z_offset.push_back(int32_t(all.z_pair.size()));
    for (int s = 0; s < S; ++s) {
      const CpcPlan& p = plans[size_t(s)];
      const int32_t* off = p.z_offset.data() + int64_t(k) * (R + 1);
      const int32_t shift = int32_t(all.z_pair.size()) - off[0];
      for (int32_t q = off[0]; q < off[R]; ++q) all.z_pair.push_back(int32_t(s * A * J) + p.z_pair[size_t(q)]);
      for (int64_t r = 1; r <= R; ++r) all.z_offset.push_back(off[r] + shift);
    }
  }
  for (const CpcPlan& p : plans) all.valid_anchors += p.valid_anchors;
  return all;
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
  ws.seeds = seeds;
  ws.param_stride = param_stride;
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
  // each run's rows with its gain and bias
  layer_norm_forward_seeds(b_, ws.e.data(), params + ln_gain, params + ln_bias, param_stride, ws.x.data(),
                           ws.mean.data(), ws.rstd.data(), seeds, R, E);
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
  const int64_t R = ws.rows;  // every seed's
  const int E = s_.embed(), S = ws.seeds;
  const size_t ps = ws.param_stride;
  T* none = nullptr;
  ws.dx.ensure(b_, size_t(R) * E);
  ws.de.ensure(b_, size_t(R) * E);
  ws.d_es.ensure(b_, size_t(R) * s_.embed_s);
  ws.d_ea.ensure(b_, size_t(R) * s_.embed_a);
  ws.d_er.ensure(b_, size_t(R) * s_.embed_r);
  gru.backward_seeds(b_, params, grads, ps, ws.x.data(), ws.reset.data(), dh, 0, ws.dx.data(), none, none, ws.gru);
  if (dx_extra) parallel_for(b_, R * E, AddInto<T>{dx_extra, ws.dx.data()});
  layer_norm_backward_seeds(b_, ws.e.data(), params + ln_gain, ws.mean.data(), ws.rstd.data(), ws.dx.data(),
                            ws.de.data(), grads + ln_gain, grads + ln_bias, ps, S, R / S, E);
  take_columns(b_, ws.de.data(), E, 0, R, s_.embed_s, ws.d_es.data());
  take_columns(b_, ws.de.data(), E, s_.embed_s, R, s_.embed_a, ws.d_ea.data());
  take_columns(b_, ws.de.data(), E, s_.embed_s + s_.embed_a, R, s_.embed_r, ws.d_er.data());
  emb_s.backward_seeds(b_, params, grads, ps, ws.xs.data(), ws.d_es.data(), none, S, ws.es, true);
  emb_a.backward_seeds(b_, params, grads, ps, ws.xa.data(), ws.d_ea.data(), none, S, ws.ea, true);
  emb_r.backward_seeds(b_, params, grads, ps, ws.xr.data(), ws.d_er.data(), none, S, ws.er, true);
}

template <class T>
CpcLossStats CpcModel<T>::loss(const T* params, T* grads, const EpisodeBatchView<T>& ep, const CpcPlan& plan,
                               CpcLossWorkspace<T>& ws) const {
  if (ep.runs != 1 || plan.runs != 1)
    throw std::invalid_argument("CpcModel::loss: one run's episodes and plan (loss_runs takes a seed batch)");
  return loss_runs(params, grads, 0, ep, plan, ws)[0];
}

template <class T>
std::vector<CpcLossStats> CpcModel<T>::loss_runs(const T* params, T* grads, size_t param_stride,
                                                 const EpisodeBatchView<T>& ep, const CpcPlan& plan,
                                                 CpcLossWorkspace<T>& ws) const {
  DYN_NVTX_RANGE("cpc_loss");
  const Backend b = b_;
  const int B = ep.batch, Tn = ep.steps, K = s_.lookahead, J = s_.logits(), S = ep.runs;
  const int E = s_.embed(), H = s_.hidden, D = s_.pair_in(), D1 = s_.classifier_hidden();
  if (plan.steps != Tn || plan.batch != B || plan.lookahead != K || plan.per_anchor != J || plan.runs != S)
    throw std::invalid_argument("CpcModel::loss: the plan was made for another batch or shape");
  const int64_t R = plan.rows(), A = plan.anchors();  // per run
  const int64_t SR = S * R, SA = S * A;
  const size_t ps = param_stride;
  // 1. the encoder over whole episodes: x [S, R, E] (the z rows) and h [S, R, H] (the anchors are the first A rows
  //    of each run's block)
  ws.prev_a.ensure(b, size_t(SR));
  ws.prev_a_value.ensure(b, size_t(SR) * s_.actions);
  ws.prev_r.ensure(b, size_t(SR));
  ws.start.ensure(b, size_t(SR));
  episode_inputs(b, ep, s_.actions, ws.prev_a.data(), ws.prev_a_value.data(), ws.prev_r.data(), ws.start.data());
  encode(params, ep.obs, ws.prev_a.data(), ep.act_value ? ws.prev_a_value.data() : static_cast<const T*>(nullptr),
         ws.prev_r.data(), ws.start.data(), static_cast<const T*>(nullptr), Tn + 1, B, ws.enc, S, ps);
  const T* x = ws.enc.x.data();
  const T* h = ws.enc.gru.h.data();
  const RunRows every_row{R, R}, anchors{A, R};
  // 2. the plan and the row sums
  ws.z_row.assign(b, plan.z_row);
  ws.valid.assign(b, plan.valid);
  ws.z_offset.assign(b, plan.z_offset);
  ws.z_pair.assign(b, plan.z_pair.empty() ? std::vector<int32_t>{0} : plan.z_pair);
  ws.weight.ensure(b, size_t(K) * SA);
  const int64_t nvalid = plan.valid_anchors / S;  // each run's (validity depends on t + k only)
  parallel_for(b, int64_t(K) * SA,
               AnchorWeights<T>{ws.valid.data(), nvalid > 0 ? T(1) / T(nvalid) : T(0), ws.weight.data()});
  ws.sz.ensure(b, size_t(SR) * 2);
  ws.sh.ensure(b, size_t(SA) * 2);
  parallel_for(b, SR, RowSums<T>{x, E, every_row, ws.sz.data()});
  parallel_for(b, SA, RowSums<T>{h, H, anchors, ws.sh.data()});
  ws.wz.ensure(b, size_t(K) * S * D1 * E);
  ws.wh.ensure(b, size_t(K) * S * D1 * H);
  ws.c.ensure(b, size_t(K) * S * D1);
  ws.d.ensure(b, size_t(K) * S * D1);
  ws.pz.ensure(b, size_t(K) * SR * D1);
  ws.ph.ensure(b, size_t(K) * SA * D1);
  ws.logits.ensure(b, size_t(K) * SA * J);
  ws.dlogits.ensure(b, size_t(K) * SA * J);
  ws.loss.ensure(b, size_t(K) * SA);
  ws.hit.ensure(b, size_t(K) * SA);
  ws.act.ensure(b, size_t(SA) * J * D1);
  ws.pair_mu.ensure(b, size_t(SA) * J);
  ws.pair_r.ensure(b, size_t(SA) * J);
  ws.pair_ds.ensure(b, size_t(SA) * J * 2);
  ws.dpz.ensure(b, size_t(SR) * D1);
  ws.dph.ensure(b, size_t(SA) * D1);
  ws.dsz.ensure(b, size_t(SR) * 2);
  ws.dsh.ensure(b, size_t(SA) * 2);
  ws.part.ensure(b, size_t(SA) * (3 * D1 + 1));
  ws.part_sum.ensure(b, size_t(S) * (3 * D1 + 1));
  ws.dwz.ensure(b, size_t(S) * D1 * E);
  ws.dwh.ensure(b, size_t(S) * D1 * H);
  ws.dx.ensure(b, size_t(SR) * E);
  ws.dh.ensure(b, size_t(SR) * H);
  ws.dx.zero();
  ws.dh.zero();
  // one classifier at a time, every run's at once: forward (keeping each pair's activations), InfoNCE over its rows,
  // backward; each run's products one strided-batched GEMM
  for (int k = 0; k < K; ++k) {
    const Classifier& c = cls[size_t(k)];
    T* wz = ws.wz.data() + int64_t(k) * S * D1 * E;  // [S, D1, E]
    T* wh = ws.wh.data() + int64_t(k) * S * D1 * H;  // [S, D1, H]
    T* ck = ws.c.data() + int64_t(k) * S * D1;       // [S, D1]
    T* dk = ws.d.data() + int64_t(k) * S * D1;
    T* pz = ws.pz.data() + int64_t(k) * SR * D1;  // [S, R, D1]
    T* ph = ws.ph.data() + int64_t(k) * SA * D1;  // [S, A, D1]
    parallel_for_2d(b, int64_t(S) * D1, E, ScaledColumns<T>{params + c.w1, params + c.ln_gain, ps, D, D1, 0, E, wz});
    parallel_for_2d(b, int64_t(S) * D1, H, ScaledColumns<T>{params + c.w1, params + c.ln_gain, ps, D, D1, E, H, wh});
    parallel_for(
        b, int64_t(S) * D1,
        GainBiasRows<T>{params + c.w1, params + c.ln_gain, params + c.ln_bias, params + c.b1, ps, D, D1, ck, dk});
    gemm_strided_batched<T>(b, false, true, int(R), D1, E, T(1), x, E, R * E, wz, E, int64_t(D1) * E, T(0), pz, D1,
                            R * D1, S);
    gemm_strided_batched<T>(b, false, true, int(A), D1, H, T(1), h, H, R * H, wh, H, int64_t(D1) * H, T(0), ph, D1,
                            A * D1, S);
    const RunPairMath<T> f{{D, D1, pz, ph, ws.sz.data(), ws.sh.data(), ck, dk, params + c.w2, params + c.b2}, ps};
    const int32_t* z_row = ws.z_row.data() + int64_t(k) * SA * J;
    const uint8_t* valid = ws.valid.data() + int64_t(k) * SA;
    T* logits = ws.logits.data() + int64_t(k) * SA * J;
    T* dl = ws.dlogits.data() + int64_t(k) * SA * J;
    parallel_for(b, SA * J,
                 PairForward<T>{f, z_row, valid, J, A, logits, ws.act.data(), ws.pair_mu.data(), ws.pair_r.data()});
    // InfoNCE over this k's rows, weighted to each run's mean over its valid (k, anchor) rows
    info_nce_batch(b, static_cast<const T*>(logits), static_cast<const uint8_t*>(nullptr),
                   ws.weight.data() + int64_t(k) * SA, ws.loss.data() + int64_t(k) * SA,
                   ws.hit.data() + int64_t(k) * SA, dl, SA, J);
    parallel_for(b, SA,
                 AnchorBackward<T>{f, z_row, valid, dl, ws.pair_mu.data(), ws.pair_r.data(), J, A, ws.act.data(),
                                   ws.pair_ds.data(), ws.dph.data(), ws.dsh.data(), ws.part.data()});
    parallel_for(b, SR,
                 ZRowBackward<T>{D1, ws.z_offset.data() + int64_t(k) * (SR + 1), ws.z_pair.data(), ws.act.data(),
                                 ws.pair_ds.data(), ws.dpz.data(), ws.dsz.data()});
    // dx += dP_z W̃_z + the row sums' part; dW̃_z = dP_zᵀ x; the same for the anchors' h rows
    gemm_strided_batched<T>(b, false, false, int(R), E, D1, T(1), ws.dpz.data(), D1, R * D1, wz, E, int64_t(D1) * E,
                            T(1), ws.dx.data(), E, R * E, S);
    parallel_for_2d(b, SR, E, RowSumsBackward<T>{x, ws.dsz.data(), E, every_row, ws.dx.data()});
    gemm_strided_batched<T>(b, true, false, D1, E, int(R), T(1), ws.dpz.data(), D1, R * D1, x, E, R * E, T(0),
                            ws.dwz.data(), E, int64_t(D1) * E, S);
    gemm_strided_batched<T>(b, false, false, int(A), H, D1, T(1), ws.dph.data(), D1, A * D1, wh, H, int64_t(D1) * H,
                            T(1), ws.dh.data(), H, R * H, S);
    parallel_for_2d(b, SA, H, RowSumsBackward<T>{h, ws.dsh.data(), H, anchors, ws.dh.data()});
    gemm_strided_batched<T>(b, true, false, D1, H, int(A), T(1), ws.dph.data(), D1, A * D1, h, H, R * H, T(0),
                            ws.dwh.data(), H, int64_t(D1) * H, S);
    parallel_for(b, int64_t(S) * (3 * D1 + 1), ColumnSums<T>{ws.part.data(), A, 3 * D1 + 1, ws.part_sum.data()});
    const RunClassifierGrads<T> g{ws.dwz.data(), ws.dwh.data(), ws.part_sum.data(), D, D1, E, H, ps};
    parallel_for_2d(b, int64_t(S) * D1, D, FirstLayerGrads<T>{g, params + c.ln_gain, params + c.ln_bias, grads + c.w1});
    parallel_for(b, int64_t(S) * D, GainBiasGrads<T>{g, params + c.w1, grads + c.ln_gain, grads + c.ln_bias});
    parallel_for(b, int64_t(S) * D1,
                 OutputGrads<T>{ws.part_sum.data(), D1, ps, grads + c.w2, grads + c.b1, grads + c.b2});
  }
  // 5. through the encoder: h's gradient through the GRU, x's (as z) joining it before the LayerNorm
  encode_backward(params, grads, ws.dh.data(), ws.dx.data(), ws.enc);
  // statistics: each run's loss sum on the backend (its K·A losses as one segment), the hits read once
  ws.run_loss.ensure(b, size_t(K) * SA);
  ws.run_loss_sum.ensure(b, size_t(S));
  parallel_for(b, int64_t(K) * SA, LossesByRun<T>{ws.loss.data(), S, K, A, ws.run_loss.data()});
  segment_sums(b, ws.run_loss.data(), size_t(K) * A, S, ws.run_loss_sum.data());
  const std::vector<T> loss_sum = ws.run_loss_sum.to_host();
  const std::vector<uint8_t> hit = ws.hit.to_host();
  std::vector<CpcLossStats> out(static_cast<size_t>(S));
  for (int s = 0; s < S; ++s) {
    CpcLossStats& st = out[size_t(s)];
    st.loss = double(loss_sum[size_t(s)]);
    st.accuracy_k.assign(size_t(K), 0.0);
    double hits = 0;
    for (int k = 0; k < K; ++k) {
      int64_t n = 0, hk = 0;
      for (int64_t a = 0; a < A; ++a) {
        const size_t i = size_t((int64_t(k) * S + s) * A + a);
        n += plan.valid[i];
        hk += hit[i];
      }
      st.accuracy_k[size_t(k)] = n > 0 ? double(hk) / double(n) : 0.0;
      hits += double(hk);
    }
    st.accuracy = nvalid > 0 ? hits / double(nvalid) : 0.0;
  }
  return out;
}

template class CpcModel<float>;
template class CpcModel<double>;

}  // namespace dyn
