// GRU sequence forward and backward through time: GEMMs for the input and recurrent projections, the gate math
// (nn/gru_cell.h) as a DYN_HD loop over N × H per step.
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/gemm.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "nn/gru.h"
#include "nn/gru_cell.h"
#include "nn/mlp.h"

namespace dyn {

namespace {

// The per-step gate loops over [N, H] as functors rather than extended lambdas (see kernels/mlp.cu).
template <class T>
struct GruGatesForward {
  int H;
  const T *gh, *b_hh, *git, *hp;  // gh [N, 3H], git [N, 3H], hp [N, H]
  T *gates, *ghn, *h;             // [N, 3H], [N, H], [N, H]
  DYN_HD void operator()(int64_t n, int64_t j) const {
    const int64_t i = n * H + j, g = n * 3 * H;
    const T gh_n = gh[g + 2 * H + j] + b_hh[2 * H + j];  // + b_hh here rather than in its own pass
    const GruUnit<T> u = gru_cell_forward(git[g + j], git[g + H + j], git[g + 2 * H + j], gh[g + j] + b_hh[j],
                                          gh[g + H + j] + b_hh[H + j], gh_n, hp[i]);
    gates[g + j] = u.r;
    gates[g + H + j] = u.z;
    gates[g + 2 * H + j] = u.n;
    ghn[i] = gh_n;
    h[i] = u.h;
  }
};

template <class T>
struct GruGatesBackward {
  int H;
  const T *dho, *gates, *ghn, *hp;  // [N, H], [N, 3H], [N, H], [N, H]
  T *carry, *dgi, *dgh;             // [N, H], [N, 3H], [N, 3H]
  DYN_HD void operator()(int64_t n, int64_t j) const {
    const int64_t i = n * H + j, g = n * 3 * H;
    const GruUnitGrad<T> d =
        gru_cell_backward(dho[i] + carry[i], gates[g + j], gates[g + H + j], gates[g + 2 * H + j], ghn[i], hp[i]);
    dgi[g + j] = d.gi_r;
    dgi[g + H + j] = d.gi_z;
    dgi[g + 2 * H + j] = d.gi_n;
    dgh[g + j] = d.gh_r;
    dgh[g + H + j] = d.gh_z;
    dgh[g + 2 * H + j] = d.gh_n;
    carry[i] = d.hprev;  // direct path; the recurrent path is added by the GEMM after it
  }
};

}  // namespace

template <class T>
void GruWorkspace<T>::reserve(Backend b, int t, int n, int hd) {
  if (steps == t && batch == n && gi.size() == size_t(t) * n * 3 * hd && gi.backend() == b) return;
  steps = t;
  batch = n;
  const size_t tn = size_t(t) * n;
  gi = Buffer<T>(b, tn * 3 * hd);
  gates = Buffer<T>(b, tn * 3 * hd);
  ghn = Buffer<T>(b, tn * hd);
  hprev = Buffer<T>(b, tn * hd);
  h = Buffer<T>(b, tn * hd);
  gh = Buffer<T>(b, size_t(n) * 3 * hd);
  dgi = Buffer<T>(b, tn * 3 * hd);
  dgh = Buffer<T>(b, tn * 3 * hd);
  carry = Buffer<T>(b, size_t(n) * hd);
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
void Gru::check_steps(const char* op, int t0, int t1, const GruWorkspace<T>& ws, Backend b) const {
  if (t0 < 0 || t1 < t0 || t1 > ws.steps || ws.gi.backend() != b ||
      ws.gi.size() != size_t(ws.steps) * ws.batch * 3 * hidden_)
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
  if (inject) parallel_for(b, int64_t(steps) * batch * 3 * hidden_, [=] DYN_LAMBDA(int64_t i) { gi[i] += inject[i]; });
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
  const int H = hidden_, N = ws.batch;
  const T* gi = ws.gi.data();
  for (int t = t0; t < t1; ++t) {
    const T* prev = t == 0 ? h0 : ws.h.data() + size_t(t - 1) * N * H;
    T* hp = ws.hprev.data() + size_t(t) * N * H;                  // [N, H]
    const uint8_t* rs = reset ? reset + size_t(t) * N : nullptr;  // [N]
    // the step starts from h_{t-1}, or zeros where an episode starts (h0 = nullptr: zeros)
    parallel_for(b, int64_t(N) * H,
                 [=] DYN_LAMBDA(int64_t i) { hp[i] = ((rs && rs[i / H]) || !prev) ? T(0) : prev[i]; });
    T* gh = ws.gh.data();
    gemm<T>(b, false, true, N, 3 * H, H, T(1), hp, H, params + w_hh_, H, T(0), gh, 3 * H);  // gh = h W_hhᵀ: [N, 3H]
    const T* b_hh = params + b_hh_;
    const T* git = gi + size_t(t) * N * 3 * H;
    T* gates = ws.gates.data() + size_t(t) * N * 3 * H;
    T* ghn = ws.ghn.data() + size_t(t) * N * H;
    T* h = ws.h.data() + size_t(t) * N * H;
    parallel_for_2d(b, N, H, GruGatesForward<T>{H, gh, b_hh, git, hp, gates, ghn, h});
  }
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
  const int H = hidden_, N = ws.batch, steps = ws.steps;
  T* carry = ws.carry.data();  // [N, H] d loss / d h_t from step t+1
  ws.carry.zero();
  for (int t = steps - 1; t >= 0; --t) {
    const T* dho = dh_out + size_t(t) * N * H;
    const T* gates = ws.gates.data() + size_t(t) * N * 3 * H;
    const T* ghn = ws.ghn.data() + size_t(t) * N * H;
    const T* hp = ws.hprev.data() + size_t(t) * N * H;
    T* dgi = ws.dgi.data() + size_t(t) * N * 3 * H;
    T* dgh = ws.dgh.data() + size_t(t) * N * 3 * H;
    parallel_for_2d(b, N, H, GruGatesBackward<T>{H, dho, gates, ghn, hp, carry, dgi, dgh});
    // d h_prev = direct + dgh W_hh: [N, 3H] × [3H, H]
    gemm<T>(b, false, false, N, H, 3 * H, T(1), dgh, 3 * H, params + w_hh_, H, T(1), carry, H);
    // no gradient into h_{t-1} where the state was reset, or across a truncation boundary
    const uint8_t* rs = reset ? reset + size_t(t) * N : nullptr;
    const bool cut = truncate_every > 0 && t > 0 && t % truncate_every == 0;
    if (t == 0 && dh0)
      parallel_for(b, int64_t(N) * H, [=] DYN_LAMBDA(int64_t i) { dh0[i] = (rs && rs[i / H]) ? T(0) : carry[i]; });
    else if (cut)
      ws.carry.zero();
    else if (rs)
      parallel_for(b, int64_t(N) * H, [=] DYN_LAMBDA(int64_t i) {
        if (rs[i / H]) carry[i] = T(0);
      });
  }
  const int rows = steps * N;
  // recurrent weights: dW_hh += Σ_t dgh_tᵀ hprev_t, db_hh += Σ dgh (one GEMM over all steps)
  linear_backward(b, ws.hprev.data(), params + w_hh_, ws.dgh.data(), static_cast<T*>(nullptr), grads + w_hh_,
                  grads + b_hh_, rows, H, 3 * H, true);
  // input weights and dx
  linear_backward(b, x, params + w_ih_, ws.dgi.data(), static_cast<T*>(nullptr), grads + w_ih_, grads + b_ih_, rows,
                  input_, 3 * H, true);
  if (dx)
    gemm<T>(b, false, false, rows, input_, 3 * H, T(1), ws.dgi.data(), 3 * H, params + w_ih_, input_, T(0), dx, input_);
  if (dinject) {
    const T* dgi = ws.dgi.data();
    parallel_for(b, int64_t(rows) * 3 * H, [=] DYN_LAMBDA(int64_t i) { dinject[i] = dgi[i]; });
  }
}

#define DYN_INSTANTIATE_GRU(T)                                                                                \
  template struct GruWorkspace<T>;                                                                            \
  template void Gru::forward<T>(Backend, const T*, const T*, const uint8_t*, const T*, const T*, int, int,    \
                                GruWorkspace<T>&) const;                                                      \
  template void Gru::project_input<T>(Backend, const T*, const T*, int, int, GruWorkspace<T>&) const;         \
  template void Gru::recur<T>(Backend, const T*, const uint8_t*, const T*, int, int, GruWorkspace<T>&) const; \
  template OpPath Gru::recur_path<T>(Backend) const;                                                          \
  template void Gru::check_steps<T>(const char*, int, int, const GruWorkspace<T>&, Backend) const;            \
  template void Gru::backward<T>(Backend, const T*, T*, const T*, const uint8_t*, const T*, int, T*, T*, T*,  \
                                 GruWorkspace<T>&) const;
DYN_INSTANTIATE_GRU(float)
DYN_INSTANTIATE_GRU(double)

}  // namespace dyn
