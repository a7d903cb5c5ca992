// Linear / MLP forward and backward: GEMMs through kernels/gemm (OpenBLAS or cuBLAS), the elementwise parts
// (bias broadcast, activations) as DYN_HD loops through parallel_for.
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "nn/mlp.h"

namespace dyn {

namespace {

// A [n] vector of ones on the backend (for bias gradients as a GEMM), grown on demand, one per host thread (a seed
// batch's runs grow theirs on their own streams); grown-out buffers stay alive because a captured CUDA Graph may
// still read them.
template <class T>
const T* ones(Backend b, int n) {
  thread_local std::vector<Buffer<T>> cache[2];
  std::vector<Buffer<T>>& bufs = cache[b == Backend::cuda];
  if (bufs.empty() || int(bufs.back().size()) < n) {
    bufs.emplace_back(b, size_t(n));
    T* p = bufs.back().data();
    parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) { p[i] = T(1); });
  }
  return bufs.back().data();
}

// The hot elementwise loops are named functors rather than extended lambdas: on the host, nvcc wraps an extended
// __host__ __device__ lambda in a type-erased wrapper called through a pointer per element, which profiling
// showed at ~15 % of an RL² iteration for the bias pass alone; a functor inlines into the OpenMP loop.

// y[r, c] ← act(y[r, c] + bias_s[c]) over S · batch rows of cols, where item r is seed s = r / batch's, at row
// r + s · gap of y (gap: the rows between one seed's batch and the next's), and bias_s is at bias + s · param_stride;
// one instantiation per activation (with_activation).
template <class T, Activation A>
struct BiasActivate {
  T* y;
  const T* bias;
  int64_t cols, batch;
  size_t param_stride;
  int64_t gap;
  DYN_HD void operator()(int64_t r, int64_t c) const {
    const int64_t seed = param_stride || gap ? r / batch : 0;  // one seed: no division
    const int64_t row = r + seed * gap;
    y[row * cols + c] = activate_as<A>(y[row * cols + c] + bias[size_t(seed) * param_stride + c]);
  }
};

template <class T, Activation A>
struct ActivationBackward {
  const T *y, *dy;
  T* dx;
  DYN_HD void operator()(int64_t i) const { dx[i] = activate_backward_as<A>(y[i], dy[i]); }
};

}  // namespace

template <class T>
void linear_forward_blocks(Backend b, const T* x, const T* w, const T* bias, size_t param_stride, T* y, int seeds,
                           int rows, int64_t block, int in, int out, Activation act) {
  const int64_t ps = int64_t(param_stride);
  // y_s = x_s W_sᵀ
  gemm_strided_batched<T>(b, false, true, rows, out, in, T(1), x, in, block * in, w, in, ps, T(0), y, out, block * out,
                          seeds);
  const int64_t gap = seeds > 1 ? block - rows : 0;
  with_activation(act, [&](auto a) {
    parallel_for_2d(b, int64_t(seeds) * rows, out,
                    BiasActivate<T, decltype(a)::value>{y, bias, out, rows > 0 ? rows : 1, param_stride, gap});
  });
}

template <class T>
void linear_forward_seeds(Backend b, const T* x, const T* w, const T* bias, size_t param_stride, T* y, int seeds,
                          int batch, int in, int out, Activation act) {
  linear_forward_blocks(b, x, w, bias, param_stride, y, seeds, batch, batch, in, out, act);
}

template <class T>
void linear_backward_seeds(Backend b, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, size_t param_stride,
                           int seeds, int batch, int in, int out, bool accumulate) {
  const T beta = accumulate ? T(1) : T(0);
  const int64_t ps = int64_t(param_stride), x_stride = int64_t(batch) * in, y_stride = int64_t(batch) * out;
  // dW_s = dy_sᵀ x_s
  gemm_strided_batched<T>(b, true, false, out, in, batch, T(1), dy, out, y_stride, x, in, x_stride, beta, dw, in, ps,
                          seeds);
  // db_s = 1ᵀ dy_s (one vector of ones for every seed: stride 0)
  gemm_strided_batched<T>(b, false, false, 1, out, batch, T(1), ones<T>(b, batch), batch, 0, dy, out, y_stride, beta,
                          db, out, ps, seeds);
  // dx_s = dy_s W_s
  if (dx)
    gemm_strided_batched<T>(b, false, false, batch, in, out, T(1), dy, out, y_stride, w, in, ps, beta, dx, in, x_stride,
                            seeds);
}

template <class T>
void linear_forward(Backend b, const T* x, const T* w, const T* bias, T* y, int batch, int in, int out,
                    Activation act) {
  linear_forward_seeds(b, x, w, bias, 0, y, 1, batch, in, out, act);
}

template <class T>
void linear_backward(Backend b, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, int batch, int in, int out,
                     bool accumulate) {
  linear_backward_seeds(b, x, w, dy, dx, dw, db, 0, 1, batch, in, out, accumulate);
}

template <class T>
void column_sums(Backend b, const T* x, int rows, int cols, T* out, bool accumulate) {
  // out[1, cols] (+)= 1ᵀ x: one GEMM against a vector of ones (the rows summed in parallel, no serial loop)
  gemm<T>(b, false, false, 1, cols, rows, T(1), ones<T>(b, rows), rows, x, cols, accumulate ? T(1) : T(0), out, cols);
}

template <class T>
void column_sums_seeds(Backend b, const T* x, int rows, int cols, T* out, int64_t out_stride, int seeds,
                       bool accumulate) {
  if (seeds == 1) return column_sums(b, x, rows, cols, out, accumulate);
  gemm_strided_batched<T>(b, false, false, 1, cols, rows, T(1), ones<T>(b, rows), rows, 0, x, cols,
                          int64_t(rows) * cols, accumulate ? T(1) : T(0), out, cols, out_stride, seeds);
}

template <class T>
void activation_backward(Backend b, Activation a, const T* y, const T* dy, T* dx, int64_t n) {
  if (a == Activation::none && dy == dx) return;
  with_activation(a, [&](auto f) { parallel_for(b, n, ActivationBackward<T, decltype(f)::value>{y, dy, dx}); });
}

template <class T>
void MlpWorkspace<T>::reserve(Backend b, const MlpShape& s, int n) {
  batch = n;  // the rows of the current pass; the buffers keep their capacity
  if (capacity >= n && sizes == s.sizes && !act.empty() && act[0].backend() == b) return;
  capacity = n;
  sizes = s.sizes;
  act.clear();
  int widest = s.sizes[0];
  for (int l = 0; l < s.layers(); ++l) {
    act.emplace_back(b, size_t(n) * s.sizes[l + 1]);
    widest = s.sizes[l + 1] > widest ? s.sizes[l + 1] : widest;
  }
  grad_a = Buffer<T>(b, size_t(n) * widest);
  grad_b = Buffer<T>(b, size_t(n) * widest);
}

Mlp::Mlp(MlpShape shape, ParamLayout& layout, const std::string& prefix, double gain, double output_gain)
    : shape_(std::move(shape)) {
  for (int l = 0; l < shape_.layers(); ++l) {
    const bool last = l == shape_.layers() - 1;
    w_off_.push_back(layout.add(prefix + ".w" + std::to_string(l), {shape_.sizes[l + 1], shape_.sizes[l]},
                                Init::orthogonal, last ? output_gain : gain));
    b_off_.push_back(layout.add(prefix + ".b" + std::to_string(l), {shape_.sizes[l + 1]}, Init::zeros));
  }
}

const char* op_path_name(OpPath p) { return p == OpPath::fused ? "fused" : "gemm"; }

template <class T>
OpPath Mlp::forward_path(Backend b) const {
  if constexpr (!std::is_same_v<T, float>) return OpPath::gemm;  // the fused kernels are float only
  const bool fused = b == Backend::cuda && fused_kernels_enabled() && fused_mlp_supported(shape_);
  return fused ? OpPath::fused : OpPath::gemm;
}

template <class T>
void Mlp::forward(Backend b, const T* params, const T* x, int batch, MlpWorkspace<T>& ws) const {
  DYN_NVTX_RANGE("mlp_forward");
  if (batch < 0) throw std::invalid_argument("Mlp::forward: batch must be >= 0, got " + std::to_string(batch));
  if (shape_.layers() < 1) throw std::logic_error("Mlp::forward: the MLP has no layers");
  ws.reserve(b, shape_, batch);
  if (batch == 0) return;
  forward_rows(b, params, x, 0, batch, ws);
}

template <class T>
void Mlp::forward_rows(Backend b, const T* params, const T* x, int row0, int rows, MlpWorkspace<T>& ws) const {
  if (rows == 0) return;
  if (!params || !x) throw std::invalid_argument("Mlp::forward: params and x must not be null");
  if (row0 < 0 || rows < 0 || int64_t(row0) + rows > ws.batch || ws.sizes != shape_.sizes || ws.act.empty() ||
      ws.act[0].backend() != b)
    throw std::invalid_argument("Mlp::forward_rows: rows [" + std::to_string(row0) + ", " +
                                std::to_string(int64_t(row0) + rows) + ") outside the workspace's " +
                                std::to_string(ws.batch) + " rows, or the workspace has another shape or backend");
  forward_rows_impl(b, params, x, row0, rows, ws);
}

template <class T>
void Mlp::forward_rows_impl(Backend b, const T* params, const T* x, int row0, int rows, MlpWorkspace<T>& ws) const {
  if constexpr (std::is_same_v<T, float>) {
    if (forward_path<T>(b) == OpPath::fused) {
      launch_fused_mlp_forward(fused_forward_plan(params, x, row0, rows, ws));
      return;
    }
  }
  layers_forward(b, params, 0, x, row0, 1, rows, ws);
}

template <class T>
void Mlp::layers_forward(Backend b, const T* params, size_t param_stride, const T* x, int row0, int seeds, int rows,
                         MlpWorkspace<T>& ws) const {
  const int64_t block = seeds > 1 ? ws.batch / seeds : rows;  // rows between two seeds' first rows
  const T* in = x + size_t(row0) * shape_.sizes[0];
  for (int l = 0; l < shape_.layers(); ++l) {
    const int n_in = shape_.sizes[l], n_out = shape_.sizes[l + 1];
    T* y = ws.act[l].data() + size_t(row0) * n_out;
    linear_forward_blocks(b, in, params + w_off_[l], params + b_off_[l], param_stride, y, seeds, rows, block, n_in,
                          n_out, l == shape_.layers() - 1 ? shape_.output : shape_.hidden);
    in = y;
  }
}

template <class T>
void Mlp::forward_rows_seeds(Backend b, const T* params, size_t param_stride, const T* x, int row0, int rows, int seeds,
                             MlpWorkspace<T>& ws) const {
  if (rows == 0) return;
  if (!params || !x) throw std::invalid_argument("Mlp::forward_rows_seeds: params and x must not be null");
  if (seeds < 1 || ws.batch % seeds != 0 || row0 < 0 || rows < 0 || int64_t(row0) + rows > ws.batch / seeds ||
      ws.sizes != shape_.sizes || ws.act.empty() || ws.act[0].backend() != b)
    throw std::invalid_argument("Mlp::forward_rows_seeds: rows [" + std::to_string(row0) + ", " +
                                std::to_string(int64_t(row0) + rows) + ") of " + std::to_string(seeds) +
                                " seeds outside the workspace's " + std::to_string(ws.batch) +
                                " rows, or the workspace has another shape or backend");
  layers_forward(b, params, param_stride, x, row0, seeds, rows, ws);
}

template <class T>
void Mlp::forward_seeds(Backend b, const T* params, size_t param_stride, const T* x, int seeds, int batch,
                        MlpWorkspace<T>& ws) const {
  DYN_NVTX_RANGE("mlp_forward_seeds");
  if (seeds < 1 || batch < 0)
    throw std::invalid_argument("Mlp::forward_seeds: need seeds >= 1 and batch >= 0, got seeds " +
                                std::to_string(seeds) + ", batch " + std::to_string(batch));
  if (shape_.layers() < 1) throw std::logic_error("Mlp::forward_seeds: the MLP has no layers");
  ws.reserve(b, shape_, seeds * batch);
  if (batch == 0) return;
  if (!params || !x) throw std::invalid_argument("Mlp::forward_seeds: params and x must not be null");
  layers_forward(b, params, param_stride, x, 0, seeds, batch, ws);
}

template <class T>
void Mlp::backward(Backend b, const T* params, T* grads, const T* x, const T* dy, T* dx, MlpWorkspace<T>& ws,
                   bool accumulate) const {
  DYN_NVTX_RANGE("mlp_backward");
  backward_seeds(b, params, grads, 0, x, dy, dx, 1, ws, accumulate);
}

template <class T>
void Mlp::backward_seeds(Backend b, const T* params, T* grads, size_t param_stride, const T* x, const T* dy, T* dx,
                         int seeds, MlpWorkspace<T>& ws, bool accumulate) const {
  if (seeds < 1 || ws.batch % seeds != 0)
    throw std::invalid_argument("Mlp::backward_seeds: the workspace's " + std::to_string(ws.batch) + " rows are not " +
                                std::to_string(seeds) + " seeds' equal shares");
  const int batch = ws.batch / seeds;  // rows per seed
  const int64_t rows = ws.batch;
  T* g = ws.grad_a.data();     // gradient w.r.t. the current layer's pre-activation
  T* next = ws.grad_b.data();  // gradient w.r.t. the current layer's input
  for (int l = shape_.layers() - 1; l >= 0; --l) {
    const int n_in = shape_.sizes[l], n_out = shape_.sizes[l + 1];
    const Activation a = l == shape_.layers() - 1 ? shape_.output : shape_.hidden;
    activation_backward(b, a, ws.act[l].data(), l == shape_.layers() - 1 ? dy : g, g, rows * n_out);
    const T* in = l == 0 ? x : ws.act[l - 1].data();
    T* d_in = l == 0 ? dx : next;
    // dx of the first layer follows `accumulate` like the parameter gradients; hidden ones are scratch
    if (l == 0) {
      linear_backward_seeds(b, in, params + w_off_[l], g, d_in, grads + w_off_[l], grads + b_off_[l], param_stride,
                            seeds, batch, n_in, n_out, accumulate);
    } else {
      linear_backward_seeds(b, in, params + w_off_[l], g, static_cast<T*>(nullptr), grads + w_off_[l],
                            grads + b_off_[l], param_stride, seeds, batch, n_in, n_out, accumulate);
      gemm_strided_batched<T>(b, false, false, batch, n_in, n_out, T(1), g, n_out, int64_t(batch) * n_out,
                              params + w_off_[l], n_in, int64_t(param_stride), T(0), d_in, n_in, int64_t(batch) * n_in,
                              seeds);
    }
    std::swap(g, next);
  }
}

#define DYN_INSTANTIATE_MLP(T)                                                                                       \
  template void linear_forward<T>(Backend, const T*, const T*, const T*, T*, int, int, int, Activation);             \
  template void linear_backward<T>(Backend, const T*, const T*, const T*, T*, T*, T*, int, int, int, bool);          \
  template void activation_backward<T>(Backend, Activation, const T*, const T*, T*, int64_t);                        \
  template void column_sums<T>(Backend, const T*, int, int, T*, bool);                                               \
  template void column_sums_seeds<T>(Backend, const T*, int, int, T*, int64_t, int, bool);                           \
  template struct MlpWorkspace<T>;                                                                                   \
  template void Mlp::forward<T>(Backend, const T*, const T*, int, MlpWorkspace<T>&) const;                           \
  template void Mlp::forward_rows<T>(Backend, const T*, const T*, int, int, MlpWorkspace<T>&) const;                 \
  template void Mlp::forward_rows_impl<T>(Backend, const T*, const T*, int, int, MlpWorkspace<T>&) const;            \
  template void Mlp::layers_forward<T>(Backend, const T*, size_t, const T*, int, int, int, MlpWorkspace<T>&) const;  \
  template void Mlp::forward_rows_seeds<T>(Backend, const T*, size_t, const T*, int, int, int, MlpWorkspace<T>&)     \
      const;                                                                                                         \
  template OpPath Mlp::forward_path<T>(Backend) const;                                                               \
  template void Mlp::backward<T>(Backend, const T*, T*, const T*, const T*, T*, MlpWorkspace<T>&, bool) const;       \
  template void linear_forward_seeds<T>(Backend, const T*, const T*, const T*, size_t, T*, int, int, int, int,       \
                                        Activation);                                                                 \
  template void linear_forward_blocks<T>(Backend, const T*, const T*, const T*, size_t, T*, int, int, int64_t, int,  \
                                         int, Activation);                                                           \
  template void linear_backward_seeds<T>(Backend, const T*, const T*, const T*, T*, T*, T*, size_t, int, int, int,   \
                                         int, bool);                                                                 \
  template void Mlp::forward_seeds<T>(Backend, const T*, size_t, const T*, int, int, MlpWorkspace<T>&) const;        \
  template void Mlp::backward_seeds<T>(Backend, const T*, T*, size_t, const T*, const T*, T*, int, MlpWorkspace<T>&, \
                                       bool) const;
DYN_INSTANTIATE_MLP(float)
DYN_INSTANTIATE_MLP(double)

}  // namespace dyn
