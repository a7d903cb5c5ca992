// Linear layers and MLPs on batch-major inputs, forward and backward, on either backend; templated on the
// scalar so the same code runs in double for gradient checks. Weights use PyTorch's layout: W [out, in].
#pragma once

#include <string>
#include <vector>

#include "kernels/buffer.h"
#include "kernels/fused_plans.h"
#include "nn/activation.h"
#include "nn/params.h"

namespace dyn {

// y[B, out] = act(x[B, in] Wᵀ + b): one GEMM, then bias and activation in one elementwise pass
template <class T>
void linear_forward(Backend b, const T* x, const T* w, const T* bias, T* y, int batch, int in, int out,
                    Activation act = Activation::none);

// Gradients of linear_forward. dx [B, in] (nullptr to skip), dw [out, in], db [out]; each is overwritten
// (accumulate = false) or added to (accumulate = true).
template <class T>
void linear_backward(Backend b, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, int batch, int in, int out,
                     bool accumulate);

// The same two ops for a seed batch, S layers of one shape at once: seed s's weights and bias are at
// s · param_stride from w and bias (its gradients likewise from dw and db: params and grads are [S, P] blobs), and
// its rows are x [S, B, in], y / dy [S, B, out], dx [S, B, in]. One strided-batched GEMM per product and one
// elementwise pass over all S · B rows; on the CPU each seed's figures are bit for bit those of the op alone (which
// is this with S = 1).
template <class T>
void linear_forward_seeds(Backend b, const T* x, const T* w, const T* bias, size_t param_stride, T* y, int seeds,
                          int batch, int in, int out, Activation act = Activation::none);
template <class T>
void linear_backward_seeds(Backend b, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, size_t param_stride,
                           int seeds, int batch, int in, int out, bool accumulate);
// linear_forward_seeds over `rows` rows of each seed where seed s's rows start `block` rows after seed s − 1's in x
// and y (block = rows: linear_forward_seeds); a recurrent caller's one time step of every seed's sequence.
template <class T>
void linear_forward_blocks(Backend b, const T* x, const T* w, const T* bias, size_t param_stride, T* y, int seeds,
                           int rows, int64_t block, int in, int out, Activation act = Activation::none);

// out [cols] = Σ_r x[r, :] (accumulate: +=) for x [rows, cols]: one GEMM against ones, on either backend.
template <class T>
void column_sums(Backend b, const T* x, int rows, int cols, T* out, bool accumulate);
// The same for `seeds` blocks x [seeds, rows, cols] into out + s · out_stride: one strided-batched GEMM (each block's
// sums exactly column_sums of it alone on the CPU).
template <class T>
void column_sums_seeds(Backend b, const T* x, int rows, int cols, T* out, int64_t out_stride, int seeds,
                       bool accumulate);

// dx = act'(y) ⊙ dy elementwise over n values (the forward activation is fused into linear_forward).
template <class T>
void activation_backward(Backend b, Activation a, const T* y, const T* dy, T* dx, int64_t n);

struct MlpShape {
  std::vector<int> sizes;                // {in, hidden..., out}
  Activation hidden = Activation::relu;  // after every hidden layer
  Activation output = Activation::none;  // after the last layer
  int layers() const { return int(sizes.size()) - 1; }
};

// Activations of one forward pass, kept for the backward pass.
template <class T>
struct MlpWorkspace {
  int batch = 0;                // rows of the last forward pass
  int capacity = 0;             // rows the buffers hold
  std::vector<int> sizes;       // the shape the buffers were sized for
  std::vector<Buffer<T>> act;   // act[l]: [B, sizes[l+1]], post-activation output of layer l
  Buffer<T> grad_a, grad_b;     // [B, max width] scratch for the backward pass
  std::vector<Buffer<T>> dpre;  // dpre[l]: [B, sizes[l+1]] gradient w.r.t. layer l's pre-activation (fused path)
  // Sets batch = n, reallocating only when the capacity, the shape or the backend does not fit.
  void reserve(Backend b, const MlpShape& s, int n);
};

// Which implementation an op's forward pass takes: the fused CUDA kernel (float, on CUDA, the shape fits, and
// fused kernels enabled: kernels/backend.h), or the GEMM path (OpenBLAS / cuBLAS GEMMs and elementwise passes).
enum class OpPath { gemm, fused };
const char* op_path_name(OpPath p);

// An MLP whose weights are views "<prefix>.w<l>" [out, in] and "<prefix>.b<l>" [out] of a ParamLayout.
class Mlp {
 public:
  Mlp() = default;
  // Registers the views: orthogonal weights with `gain` (sqrt 2 for ReLU layers by default), zero biases.
  Mlp(MlpShape shape, ParamLayout& layout, const std::string& prefix, double gain = 1.4142135623730951,
      double output_gain = 1.0);
  const MlpShape& shape() const { return shape_; }
  size_t weight_offset(int l) const { return w_off_[l]; }
  size_t bias_offset(int l) const { return b_off_[l]; }

  // Output is ws.act.back(): [B, out]. Checked (sizes, pointers) and dispatched by forward_path().
  template <class T>
  void forward(Backend b, const T* params, const T* x, int batch, MlpWorkspace<T>& ws) const;

  // The implementation forward() and forward_rows() take on backend b for scalar T.
  template <class T>
  OpPath forward_path(Backend b) const;

  // The fused kernel's launch for rows [row0, row0 + rows) over a workspace reserved for them (the shape must be
  // fused_mlp_supported); forward() launches it on CUDA, the CPU emulation test runs it on the host.
  FusedMlpPlan fused_forward_plan(const float* params, const float* x, int row0, int rows,
                                  MlpWorkspace<float>& ws) const;

  // Rows [row0, row0 + rows) of a forward pass over a workspace already reserved (ws.reserve) for all of them: x is
  // the whole input [batch, in] and each layer writes its rows of ws.act. forward() is reserve + all rows; a
  // recurrent caller runs the rows of one time step at a time and keeps one workspace for the backward pass.
  template <class T>
  void forward_rows(Backend b, const T* params, const T* x, int row0, int rows, MlpWorkspace<T>& ws) const;

  // Given dy [B, out] for the output of the last forward(x): adds (accumulate) or writes parameter gradients
  // into `grads` (a blob with the same layout as `params`) and writes dx [B, in] unless it is nullptr.
  template <class T>
  void backward(Backend b, const T* params, T* grads, const T* x, const T* dy, T* dx, MlpWorkspace<T>& ws,
                bool accumulate) const;

  // S copies of this MLP at once, one per seed of a seed batch: seed s's parameters (and gradients) are the blob at
  // s · param_stride ([S, P]); x is [S, batch, in] and ws.act[l] [S, batch, out_l] (the workspace holds S · batch
  // rows). Each layer is one strided-batched GEMM and one elementwise pass over all rows. Seed s's figures are
  // forward(params_s, x_s, batch)'s — bit for bit on the CPU; on CUDA within rounding (the GEMM path, not the fused
  // kernel). backward_seeds follows a forward_seeds: dy [S, batch, out], dx [S, batch, in] (nullptr to skip).
  template <class T>
  void forward_seeds(Backend b, const T* params, size_t param_stride, const T* x, int seeds, int batch,
                     MlpWorkspace<T>& ws) const;
  template <class T>
  void backward_seeds(Backend b, const T* params, T* grads, size_t param_stride, const T* x, const T* dy, T* dx,
                      int seeds, MlpWorkspace<T>& ws, bool accumulate) const;
  // forward_rows for a seed batch: rows [row0, row0 + rows) of each seed's block of ws.batch / seeds rows (x
  // [S, block, in]), over a workspace reserved for all of them (the GEMM path); backward_seeds applies after.
  template <class T>
  void forward_rows_seeds(Backend b, const T* params, size_t param_stride, const T* x, int row0, int rows, int seeds,
                          MlpWorkspace<T>& ws) const;

 private:
  template <class T>
  void forward_rows_impl(Backend b, const T* params, const T* x, int row0, int rows, MlpWorkspace<T>& ws) const;
  // The GEMM path over the layers: rows [row0, row0 + rows) of each of `seeds` seeds' blocks of ws.batch / seeds rows.
  template <class T>
  void layers_forward(Backend b, const T* params, size_t param_stride, const T* x, int row0, int seeds, int rows,
                      MlpWorkspace<T>& ws) const;
  MlpShape shape_;
  std::vector<size_t> w_off_, b_off_;
};

// ---- fully fused CUDA path (kernels/fused_mlp.cu): float only ----

// True when the fused forward kernel handles this shape: 1 to 4 layers, every hidden width equal to W ∈ {32, 64,
// 128} (one layer: W = the smallest that holds the output), the output at most W and the input at most 128.
bool fused_mlp_supported(const MlpShape& s);
// The fused backward kernel also needs the input at most W.
bool fused_mlp_backward_supported(const MlpShape& s);

// Launches a plan of Mlp::fused_forward_plan on the CUDA stream.
void launch_fused_mlp_forward(const FusedMlpPlan& plan);

// Mlp::forward on Backend::cuda forced onto the fused kernel (tests and benchmarks compare the two paths): one
// kernel runs all layers for a tile of 128 samples, keeping the tile's activations in shared memory; every layer's
// output is still written to ws.act for the backward pass.
void mlp_forward_fused(const Mlp& mlp, const float* params, const float* x, int batch, MlpWorkspace<float>& ws);

// Same contract as Mlp::backward on Backend::cuda: one kernel back-propagates a tile through all layers
// (activation derivatives and dx, weights in shared memory) and stores each layer's pre-activation gradient;
// the weight and bias gradients are then one cuBLAS GEMM per layer over the whole batch.
void mlp_backward_fused(const Mlp& mlp, const float* params, float* grads, const float* x, const float* dy, float* dx,
                        MlpWorkspace<float>& ws, bool accumulate);

}  // namespace dyn
