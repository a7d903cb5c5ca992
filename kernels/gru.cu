// GRU sequence forward and backward through time: GEMMs for the input and recurrent projections, the gate math
// (nn/gru_cell.h) as a DYN_HD loop over N × H per step — for one network, or for a seed batch's S networks at once
// (strided-batched GEMMs, one gate pass over all S · N streams per step).
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/copy.h"
#include "kernels/gemm.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "nn/gru.h"
#include "nn/gru_cell.h"
#include "nn/mlp.h"

namespace dyn {

namespace {

// Where a step's stream r (of S · N: seed s = r / N, stream n = r % N) sits. The sequence arrays are seed-major
// [S, T, N, ·], so at step t seed s's rows start seed_gap = (T − 1) · N rows after where they would if the seeds'
// steps were side by side; the per-step scratch (gh, carry, h0) is [S, N, ·], indexed by r itself. With one seed
// (Seeds = false) every index is r, so the compiler sees one index and vectorises the gate loops as before the seed
// axis (measured: the generic form made the CPU GRU backward 30 % slower at hidden 64).
template <bool Seeds>
struct StepRows {
  int64_t streams;   // N
  int64_t seed_gap;  // (T − 1) · N
  DYN_HD int64_t seed(int64_t r) const { return Seeds ? r / streams : 0; }
  DYN_HD int64_t seq(int64_t r) const { return Seeds ? r + seed(r) * seed_gap : r; }
};

// Calls f(std::true_type) for a seed batch, f(std::false_type) for one seed.
template <class F>
void with_seed_layout(bool seeds, F&& f) {
  if (seeds)
    f(std::true_type{});
  else
    f(std::false_type{});
}

// The per-step gate loops over [S · N, H] as functors rather than extended lambdas (see kernels/mlp.cu). Pointers to
// sequence arrays are at step t of seed 0.
template <class T, bool Seeds>
struct GruGatesForward {
  int H;
  StepRows<Seeds> rows;
  size_t param_stride;            // seed s's b_hh at b_hh + s · param_stride
  const T *gh, *b_hh, *git, *hp;  // gh [S, N, 3H] scratch; git [., 3H], hp [., H] sequence
  T *gates, *ghn, *h;             // sequence [., 3H], [., H], [., H]
  DYN_HD void operator()(int64_t r, int64_t j) const {
    const int64_t q = rows.seq(r), i = q * H + j, g = q * 3 * H, gs = r * 3 * H;
    const T* bias = b_hh + size_t(rows.seed(r)) * param_stride;
    const T gh_n = gh[gs + 2 * H + j] + bias[2 * H + j];  // + b_hh here rather than in its own pass
    const GruUnit<T> u = gru_cell_forward(git[g + j], git[g + H + j], git[g + 2 * H + j], gh[gs + j] + bias[j],
                                          gh[gs + H + j] + bias[H + j], gh_n, hp[i]);
    gates[g + j] = u.r;
    gates[g + H + j] = u.z;
    gates[g + 2 * H + j] = u.n;
    ghn[i] = gh_n;
    h[i] = u.h;
  }
};

template <class T, bool Seeds>
struct GruGatesBackward {
  int H;
  StepRows<Seeds> rows;
  const T *dho, *gates, *ghn, *hp;  // sequence [., H], [., 3H], [., H], [., H]
  T* carry;                         // [S, N, H] scratch
  T *dgi, *dgh;                     // sequence [., 3H], [., 3H]
  DYN_HD void operator()(int64_t r, int64_t j) const {
    const int64_t q = rows.seq(r), i = q * H + j, g = q * 3 * H, c = r * H + j;
    const GruUnitGrad<T> d =
        gru_cell_backward(dho[i] + carry[c], gates[g + j], gates[g + H + j], gates[g + 2 * H + j], ghn[i], hp[i]);
    dgi[g + j] = d.gi_r;
    dgi[g + H + j] = d.gi_z;
    dgi[g + 2 * H + j] = d.gi_n;
    dgh[g + j] = d.gh_r;
    dgh[g + H + j] = d.gh_z;
    dgh[g + 2 * H + j] = d.gh_n;
    carry[c] = d.hprev;  // direct path; the recurrent path is added by the GEMM after it
  }
};

// hp ← the state step t starts from: h_{t−1} (prev, a sequence array at step t − 1; or h0 [S, N, H] scratch at
// t = 0), zeros where the stream resets (reset: sequence [., 1] at step t) or where there is none.
template <class T, bool Seeds>
struct GruStepStart {
  int H;
  StepRows<Seeds> rows;
  const T* prev;
  bool prev_is_h0;
  const uint8_t* reset;
  T* hp;
  DYN_HD void operator()(int64_t r, int64_t j) const {
    const int64_t q = rows.seq(r);
    const bool zero = (reset && reset[q]) || !prev;
    hp[q * H + j] = zero ? T(0) : prev[(prev_is_h0 ? r : q) * H + j];
  }
};

// Backward at a step boundary: dh0 ← carry, or carry ← 0, where the stream reset at step t (reset at step t).
template <class T, bool Seeds>
struct GruCarryReset {
  int H;
  StepRows<Seeds> rows;
  const uint8_t* reset;
  T *carry, *dh0;  // [S, N, H] scratch; dh0 (nullptr: carry is cut in place)
  DYN_HD void operator()(int64_t r, int64_t j) const {
    const bool cut = reset && reset[rows.seq(r)];
    if (dh0)
      dh0[r * H + j] = cut ? T(0) : carry[r * H + j];
    else if (cut)
      carry[r * H + j] = T(0);
  }
};

}  // namespace

template <class T>
void GruWorkspace<T>::reserve(Backend b, int t, int n, int hd, int s) {
  if (steps == t && batch == n && seeds == s && gi.size() == size_t(s) * t * n * 3 * hd && gi.backend() == b) return;
  steps = t;
  batch = n;
  seeds = s;
  const size_t tn = size_t(s) * t * n, sn = size_t(s) * n;
  gi = Buffer<T>(b, tn * 3 * hd);
  gates = Buffer<T>(b, tn * 3 * hd);
  ghn = Buffer<T>(b, tn * hd);
  hprev = Buffer<T>(b, tn * hd);
  h = Buffer<T>(b, tn * hd);
  gh = Buffer<T>(b, sn * 3 * hd);
  dgi = Buffer<T>(b, tn * 3 * hd);
  dgh = Buffer<T>(b, tn * 3 * hd);
  carry = Buffer<T>(b, sn * hd);
}

Gru::Gru(int input, int hidden, ParamLayout& layout, const std::string& prefix) : input_(input), hidden_(hidden) {
  w_ih_ = layout.add(prefix + ".weight_ih", {3 * hidden, input}, Init::orthogonal);
  w_hh_ = layout.add(prefix + ".weight_hh", {3 * hidden, hidden}, Init::orthogonal);
  b_ih_ = layout.add(prefix + ".bias_ih", {3 * hidden}, Init::zeros);
  b_hh_ = layout.add(prefix + ".bias_hh", {3 * hidden}, Init::zeros);
}

template <class T>
OpPath Gru::recur_path(Backend b) const {
  if constexpr (!std::is_same_v<T, float>) return OpPath::gemm;  // the fused kernel is float only
  const bool fused = b == Backend::cuda && fused_kernels_enabled() && fused_gru_supported(hidden_);
  return fused ? OpPath::fused : OpPath::gemm;
}

template <class T>
void Gru::check_steps(const char* op, int t0, int t1, const GruWorkspace<T>& ws, Backend b, int seeds) const {
  if (ws.seeds != seeds)
    throw std::invalid_argument(std::string("Gru::") + op + ": the workspace holds a seed batch of " +
                                std::to_string(ws.seeds) + ", not " + std::to_string(seeds) +
                                " (project_input_seeds and recur_seeds run a seed batch's steps)");
  if (t0 < 0 || t1 < t0 || t1 > ws.steps || ws.gi.backend() != b ||
      ws.gi.size() != size_t(ws.seeds) * ws.steps * ws.batch * 3 * hidden_)
    throw std::invalid_argument(std::string("Gru::") + op + ": steps [" + std::to_string(t0) + ", " +
                                std::to_string(t1) + ") outside the workspace's " + std::to_string(ws.steps) +
                                ", or the workspace was reserved for another width or backend");
}

template <class T>
void Gru::forward(Backend b, const T* params, const T* x, const uint8_t* reset, const T* inject, const T* h0, int steps,
                  int batch, GruWorkspace<T>& ws) const {
  DYN_NVTX_RANGE("gru_forward");
  if (steps < 0 || batch < 0)
    throw std::invalid_argument("Gru::forward: steps and batch must be >= 0, got " + std::to_string(steps) + " and " +
                                std::to_string(batch));
  ws.reserve(b, steps, batch, hidden_);
  if (steps == 0 || batch == 0) return;
  if (!params || !x) throw std::invalid_argument("Gru::forward: params and x must not be null");
  project_input(b, params, x, 0, steps, ws);  // all steps in one GEMM: [T·N, 3H]
  T* gi = ws.gi.data();
  if (inject) add_values(b, inject, gi, int64_t(steps) * batch * 3 * hidden_);
  recur(b, params, reset, h0, 0, steps, ws);
}

template <class T>
void Gru::project_input(Backend b, const T* params, const T* x, int t0, int t1, GruWorkspace<T>& ws) const {
  check_steps("project_input", t0, t1, ws, b);
  const int N = ws.batch, H = hidden_;
  const size_t r0 = size_t(t0) * N;
  // gi = x W_ihᵀ + b_ih: [(t1 − t0)·N, 3H]
  linear_forward(b, x + r0 * input_, params + w_ih_, params + b_ih_, ws.gi.data() + r0 * 3 * H, (t1 - t0) * N, input_,
                 3 * H);
}

template <class T>
void Gru::project_input_seeds(Backend b, const T* params, size_t param_stride, const T* x, int t0, int t1,
                              GruWorkspace<T>& ws) const {
  check_steps("project_input_seeds", t0, t1, ws, b, ws.seeds);
  const int N = ws.batch, H = hidden_;
  const size_t r0 = size_t(t0) * N;
  // gi_s = x_s W_ih,sᵀ + b_ih,s over steps [t0, t1) of each seed's [T·N] block
  linear_forward_blocks(b, x + r0 * input_, params + w_ih_, params + b_ih_, param_stride, ws.gi.data() + r0 * 3 * H,
                        ws.seeds, (t1 - t0) * N, int64_t(ws.steps) * N, input_, 3 * H);
}

template <class T>
void Gru::recur_seeds(Backend b, const T* params, size_t param_stride, const uint8_t* reset, const T* h0, int t0,
                      int t1, GruWorkspace<T>& ws) const {
  check_steps("recur_seeds", t0, t1, ws, b, ws.seeds);
  if (t1 == t0 || ws.batch == 0) return;
  recur_gemm(b, params, param_stride, reset, h0, t0, t1, ws);
}

template <class T>
void Gru::recur(Backend b, const T* params, const uint8_t* reset, const T* h0, int t0, int t1,
                GruWorkspace<T>& ws) const {
  check_steps("recur", t0, t1, ws, b);
  if (t1 == t0 || ws.batch == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (recur_path<T>(b) == OpPath::fused) {
      launch_fused_gru(fused_recur_plan(params, reset, h0, t0, t1, ws));
      return;
    }
  }
  recur_gemm(b, params, 0, reset, h0, t0, t1, ws);
}

template <class T>
void Gru::recur_gemm(Backend b, const T* params, size_t param_stride, const uint8_t* reset, const T* h0, int t0, int t1,
                     GruWorkspace<T>& ws) const {
  const int H = hidden_, N = ws.batch, S = ws.seeds;
  const int64_t seq = int64_t(ws.steps) * N;  // rows between two seeds' blocks of a sequence array
  with_seed_layout(S > 1, [&](auto seeds) {
    constexpr bool kSeeds = decltype(seeds)::value;
    const StepRows<kSeeds> rows{N, seq - N};
    for (int t = t0; t < t1; ++t) {
      const size_t at = size_t(t) * N;  // step t's first row in seed 0's block
      T* hp = ws.hprev.data() + at * H;
      // the step starts from h_{t-1}, or zeros where an episode starts (h0 = nullptr: zeros)
      const T* prev = t == 0 ? h0 : ws.h.data() + (at - N) * H;
      parallel_for_2d(b, int64_t(S) * N, H,
                      GruStepStart<T, kSeeds>{H, rows, prev, t == 0, reset ? reset + at : nullptr, hp});
      T* gh = ws.gh.data();  // gh_s = h_s W_hh,sᵀ: [N, 3H] per seed
      gemm_strided_batched<T>(b, false, true, N, 3 * H, H, T(1), hp, H, seq * H, params + w_hh_, H,
                              int64_t(param_stride), T(0), gh, 3 * H, int64_t(N) * 3 * H, S);
      parallel_for_2d(
          b, int64_t(S) * N, H,
          GruGatesForward<T, kSeeds>{H, rows, param_stride, gh, params + b_hh_, ws.gi.data() + at * 3 * H, hp,
                                     ws.gates.data() + at * 3 * H, ws.ghn.data() + at * H, ws.h.data() + at * H});
    }
  });
}

template <class T>
void Gru::forward_seeds(Backend b, const T* params, size_t param_stride, const T* x, const uint8_t* reset,
                        const T* inject, const T* h0, int seeds, int steps, int batch, GruWorkspace<T>& ws) const {
  DYN_NVTX_RANGE("gru_forward_seeds");
  if (seeds < 1 || steps < 0 || batch < 0)
    throw std::invalid_argument("Gru::forward_seeds: need seeds >= 1, steps and batch >= 0, got seeds " +
                                std::to_string(seeds) + ", steps " + std::to_string(steps) + ", batch " +
                                std::to_string(batch));
  ws.reserve(b, steps, batch, hidden_, seeds);
  if (steps == 0 || batch == 0) return;
  if (!params || !x) throw std::invalid_argument("Gru::forward_seeds: params and x must not be null");
  const int64_t rows = int64_t(steps) * batch;  // each seed's block: [T·N, ·]
  // gi_s = x_s W_ih,sᵀ + b_ih,s over all of seed s's steps
  linear_forward_seeds(b, x, params + w_ih_, params + b_ih_, param_stride, ws.gi.data(), seeds, int(rows), input_,
                       3 * hidden_);
  if (inject) add_values(b, inject, ws.gi.data(), int64_t(seeds) * rows * 3 * hidden_);
  recur_gemm(b, params, param_stride, reset, h0, 0, steps, ws);
}

FusedGruPlan Gru::fused_recur_plan(const float* params, const uint8_t* reset, const float* h0, int t0, int t1,
                                   GruWorkspace<float>& ws) const {
  if (!fused_gru_supported(hidden_))
    throw std::invalid_argument("Gru::fused_recur_plan: hidden " + std::to_string(hidden_) +
                                " has no fused kernel (64 or 128)");
  const int H = hidden_, N = ws.batch;
  const size_t row0 = size_t(t0) * N;  // the first (step, stream) row of the plan
  FusedGruPlan plan;
  plan.hidden = H;
  const int per_block = fused_gru::streams_per_block(H);
  plan.blocks = unsigned((N + per_block - 1) / per_block);
  plan.w_hh = params + w_hh_;
  plan.b_hh = params + b_hh_;
  plan.gi = ws.gi.data() + row0 * 3 * H;
  plan.reset = reset ? reset + row0 : nullptr;
  plan.h0 = t0 == 0 ? h0 : ws.h.data() + size_t(t0 - 1) * N * H;  // as the GEMM path: step t0 starts from h_{t0−1}
  plan.steps = t1 - t0;
  plan.streams = N;
  plan.out = {ws.h.data() + row0 * H, ws.hprev.data() + row0 * H, ws.gates.data() + row0 * 3 * H,
              ws.ghn.data() + row0 * H};
  return plan;
}

template <class T>
void Gru::backward(Backend b, const T* params, T* grads, const T* x, const uint8_t* reset, const T* dh_out,
                   int truncate_every, T* dx, T* dinject, T* dh0, GruWorkspace<T>& ws) const {
  DYN_NVTX_RANGE("gru_backward");
  backward_seeds(b, params, grads, 0, x, reset, dh_out, truncate_every, dx, dinject, dh0, ws);
}

template <class T>
void Gru::backward_seeds(Backend b, const T* params, T* grads, size_t param_stride, const T* x, const uint8_t* reset,
                         const T* dh_out, int truncate_every, T* dx, T* dinject, T* dh0, GruWorkspace<T>& ws) const {
  const int H = hidden_, N = ws.batch, steps = ws.steps, S = ws.seeds;
  const int64_t seq = int64_t(steps) * N;  // rows of each seed's block
  T* carry = ws.carry.data();              // [S, N, H] d loss / d h_t from step t+1
  ws.carry.zero();
  with_seed_layout(S > 1, [&](auto seeds) {
    constexpr bool kSeeds = decltype(seeds)::value;
    const StepRows<kSeeds> rows{N, seq - N};
    for (int t = steps - 1; t >= 0; --t) {
      const size_t at = size_t(t) * N;  // step t's first row in seed 0's block
      T* dgh = ws.dgh.data() + at * 3 * H;
      parallel_for_2d(
          b, int64_t(S) * N, H,
          GruGatesBackward<T, kSeeds>{H, rows, dh_out + at * H, ws.gates.data() + at * 3 * H, ws.ghn.data() + at * H,
                                      ws.hprev.data() + at * H, carry, ws.dgi.data() + at * 3 * H, dgh});
      // d h_prev = direct + dgh W_hh: [N, 3H] × [3H, H] per seed
      gemm_strided_batched<T>(b, false, false, N, H, 3 * H, T(1), dgh, 3 * H, seq * 3 * H, params + w_hh_, H,
                              int64_t(param_stride), T(1), carry, H, int64_t(N) * H, S);
      // no gradient into h_{t-1} where the state was reset, or across a truncation boundary
      const uint8_t* rs = reset ? reset + at : nullptr;
      const bool cut = truncate_every > 0 && t > 0 && t % truncate_every == 0;
      if (t == 0 && dh0)
        parallel_for_2d(b, int64_t(S) * N, H, GruCarryReset<T, kSeeds>{H, rows, rs, carry, dh0});
      else if (cut)
        ws.carry.zero();
      else if (rs)
        parallel_for_2d(b, int64_t(S) * N, H, GruCarryReset<T, kSeeds>{H, rows, rs, carry, static_cast<T*>(nullptr)});
    }
  });
  // recurrent weights: dW_hh += Σ_t dgh_tᵀ hprev_t, db_hh += Σ dgh (one GEMM over all of a seed's steps)
  linear_backward_seeds(b, ws.hprev.data(), params + w_hh_, ws.dgh.data(), static_cast<T*>(nullptr), grads + w_hh_,
                        grads + b_hh_, param_stride, S, int(seq), H, 3 * H, true);
  // input weights and dx
  linear_backward_seeds(b, x, params + w_ih_, ws.dgi.data(), static_cast<T*>(nullptr), grads + w_ih_, grads + b_ih_,
                        param_stride, S, int(seq), input_, 3 * H, true);
  if (dx)
    gemm_strided_batched<T>(b, false, false, int(seq), input_, 3 * H, T(1), ws.dgi.data(), 3 * H, seq * 3 * H,
                            params + w_ih_, input_, int64_t(param_stride), T(0), dx, input_, seq * input_, S);
  if (dinject) copy_values(b, static_cast<const T*>(ws.dgi.data()), dinject, int64_t(S) * seq * 3 * H);
}

#define DYN_INSTANTIATE_GRU(T)                                                                                         \
  template struct GruWorkspace<T>;                                                                                     \
  template void Gru::forward<T>(Backend, const T*, const T*, const uint8_t*, const T*, const T*, int, int,             \
                                GruWorkspace<T>&) const;                                                               \
  template void Gru::project_input<T>(Backend, const T*, const T*, int, int, GruWorkspace<T>&) const;                  \
  template void Gru::recur<T>(Backend, const T*, const uint8_t*, const T*, int, int, GruWorkspace<T>&) const;          \
  template OpPath Gru::recur_path<T>(Backend) const;                                                                   \
  template void Gru::check_steps<T>(const char*, int, int, const GruWorkspace<T>&, Backend, int) const;                \
  template void Gru::project_input_seeds<T>(Backend, const T*, size_t, const T*, int, int, GruWorkspace<T>&) const;    \
  template void Gru::recur_seeds<T>(Backend, const T*, size_t, const uint8_t*, const T*, int, int, GruWorkspace<T>&)   \
      const;                                                                                                           \
  template void Gru::backward<T>(Backend, const T*, T*, const T*, const uint8_t*, const T*, int, T*, T*, T*,           \
                                 GruWorkspace<T>&) const;                                                              \
  template void Gru::recur_gemm<T>(Backend, const T*, size_t, const uint8_t*, const T*, int, int, GruWorkspace<T>&)    \
      const;                                                                                                           \
  template void Gru::forward_seeds<T>(Backend, const T*, size_t, const T*, const uint8_t*, const T*, const T*, int,    \
                                      int, int, GruWorkspace<T>&) const;                                               \
  template void Gru::backward_seeds<T>(Backend, const T*, T*, size_t, const T*, const uint8_t*, const T*, int, T*, T*, \
                                       T*, GruWorkspace<T>&) const;
DYN_INSTANTIATE_GRU(float)
DYN_INSTANTIATE_GRU(double)

}  // namespace dyn
