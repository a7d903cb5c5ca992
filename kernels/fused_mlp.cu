// Fully fused MLP forward and backward (CUDA, float). A block takes a tile of 128 samples through every layer
// with the tile's activations in shared memory and one layer's weights (zero-padded to W × W) beside them;
// each of the 256 threads owns an 8-row × (W/16)-column register tile. The backward kernel runs the same chain
// with transposed weights to get every layer's pre-activation gradient and dx; the weight gradients are then
// one cuBLAS GEMM per layer over the whole batch (as tiny-cuda-nn does), so no atomics are needed.
// Mlp::forward takes the forward kernel when the shape fits (kernels/mlp.cu). Tested against the unfused path in
// tests/test_nn_gpu.cpp (label gpu) and, through the same launch plans, on the CPU in tests/test_fused_emulated.cpp.
#include <stdexcept>
#include <string>

#include "kernels/check.h"
#include "kernels/fused_mlp_kernels.cuh"
#include "kernels/nvtx.h"
#include "nn/mlp.h"

namespace dyn {

namespace {

using namespace fused_mlp;

// The smallest kernel width of 32, 64, 128 that holds n columns; 0 when none does.
int kernel_width(int n) {
  for (int w : {32, 64, 128})
    if (n <= w) return w;
  return 0;
}

// The kernel's width W: the hidden width, or for a single layer the smallest kernel width that holds its output.
int fused_width(const MlpShape& s) {
  if (s.layers() >= 2) return s.sizes[1];
  if (s.layers() < 1) return 0;
  return kernel_width(s.sizes[1]);
}

// The padded input width WI: the smallest kernel width that holds the input and W.
int fused_in_width(const MlpShape& s) {
  const int w = fused_width(s);
  return kernel_width(s.sizes[0] > w ? s.sizes[0] : w);
}

FusedLayers fused_layers(const Mlp& mlp, const float* params, MlpWorkspace<float>& ws, bool with_dpre) {
  const MlpShape& s = mlp.shape();
  FusedLayers L{};
  L.layers = s.layers();
  L.hidden = s.hidden;
  L.output = s.output;
  for (int l = 0; l < L.layers; ++l) {
    L.w[l] = params + mlp.weight_offset(l);
    L.b[l] = params + mlp.bias_offset(l);
    L.act[l] = ws.act[l].data();
    L.dpre[l] = with_dpre ? ws.dpre[l].data() : nullptr;
    L.in[l] = s.sizes[l];
    L.out[l] = s.sizes[l + 1];
  }
  return L;
}

template <int W, int WI, class Kernel, class... Args>
void launch(Kernel kernel, int batch, Args... args) {
  const size_t bytes = smem_bytes<W, WI>();
  static const bool opted_in = [&] {  // once per kernel: allow more than 48 KiB of dynamic shared memory
    DYN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    return true;
  }();
  (void)opted_in;
  const int blocks = (batch + kTile - 1) / kTile;
  kernel<<<blocks, kThreads, bytes, cuda_stream()>>>(args...);
  DYN_CUDA_CHECK(cudaGetLastError());
}

template <int W, int WI>
void launch_forward(const FusedMlpPlan& p) {
  launch<W, WI>(fused_mlp_forward_kernel<W, WI>, p.rows, p.layers, p.x, p.rows);
}

}  // namespace

bool fused_mlp_supported(const MlpShape& s) {
  if (s.layers() < 1 || s.layers() > kMaxLayers) return false;
  const int w = fused_width(s);
  if (w != 32 && w != 64 && w != 128) return false;
  for (int l = 1; l < s.layers(); ++l)
    if (s.sizes[l] != w) return false;
  return fused_in_width(s) != 0 && s.sizes.back() <= w;
}

bool fused_mlp_backward_supported(const MlpShape& s) {
  return fused_mlp_supported(s) && fused_in_width(s) == fused_width(s);
}

FusedMlpPlan Mlp::fused_forward_plan(const float* params, const float* x, int row0, int rows,
                                     MlpWorkspace<float>& ws) const {
  if (!fused_mlp_supported(shape_))
    throw std::invalid_argument("Mlp::fused_forward_plan: shape not supported by the fused kernel");
  FusedMlpPlan plan;
  plan.width = fused_width(shape_);
  plan.in_width = fused_in_width(shape_);
  plan.blocks = unsigned((rows + kTile - 1) / kTile);
  plan.layers = fused_layers(*this, params, ws, false);
  for (int l = 0; l < shape_.layers(); ++l) plan.layers.act[l] += size_t(row0) * shape_.sizes[l + 1];
  plan.x = x + size_t(row0) * shape_.sizes[0];
  plan.rows = rows;
  return plan;
}

void launch_fused_mlp_forward(const FusedMlpPlan& plan) {
  DYN_NVTX_RANGE("mlp_forward_fused");
  if (plan.rows == 0) return;
  const int key = plan.width * 1000 + plan.in_width;
  switch (key) {  // (W, WI): the instantiated pairs
    case 32032:
      launch_forward<32, 32>(plan);
      break;
    case 32064:
      launch_forward<32, 64>(plan);
      break;
    case 32128:
      launch_forward<32, 128>(plan);
      break;
    case 64064:
      launch_forward<64, 64>(plan);
      break;
    case 64128:
      launch_forward<64, 128>(plan);
      break;
    case 128128:
      launch_forward<128, 128>(plan);
      break;
    default:
      throw std::invalid_argument("launch_fused_mlp_forward: widths (" + std::to_string(plan.width) + ", " +
                                  std::to_string(plan.in_width) + ") (allowed: W, WI of 32, 64, 128 with WI >= W)");
  }
}

void mlp_forward_fused(const Mlp& mlp, const float* params, const float* x, int batch, MlpWorkspace<float>& ws) {
  ws.reserve(Backend::cuda, mlp.shape(), batch);
  launch_fused_mlp_forward(mlp.fused_forward_plan(params, x, 0, batch, ws));
}

void mlp_backward_fused(const Mlp& mlp, const float* params, float* grads, const float* x, const float* dy, float* dx,
                        MlpWorkspace<float>& ws, bool accumulate) {
  DYN_NVTX_RANGE("mlp_backward_fused");
  const MlpShape& s = mlp.shape();
  if (!fused_mlp_backward_supported(s))
    throw std::invalid_argument("mlp_backward_fused: shape not supported by the fused backward kernel");
  const int batch = ws.batch;
  if (int(ws.dpre.size()) != s.layers() || ws.dpre[0].size() < size_t(batch) * s.sizes[1]) {
    ws.dpre.clear();
    for (int l = 0; l < s.layers(); ++l) ws.dpre.emplace_back(Backend::cuda, size_t(batch) * s.sizes[l + 1]);
  }
  const FusedLayers L = fused_layers(mlp, params, ws, true);
  switch (fused_width(s)) {
    case 32:
      launch<32, 32>(fused_mlp_backward_kernel<32>, batch, L, dy, dx, accumulate, batch);
      break;
    case 64:
      launch<64, 64>(fused_mlp_backward_kernel<64>, batch, L, dy, dx, accumulate, batch);
      break;
    default:
      launch<128, 128>(fused_mlp_backward_kernel<128>, batch, L, dy, dx, accumulate, batch);
      break;
  }
  // weight and bias gradients: dW_l (+)= dpre_lᵀ · input_l, db_l (+)= 1ᵀ · dpre_l over the whole batch
  for (int l = 0; l < s.layers(); ++l) {
    const float* in = l == 0 ? x : ws.act[l - 1].data();
    linear_backward(Backend::cuda, in, params + mlp.weight_offset(l), ws.dpre[l].data(), static_cast<float*>(nullptr),
                    grads + mlp.weight_offset(l), grads + mlp.bias_offset(l), batch, s.sizes[l], s.sizes[l + 1],
                    accumulate);
  }
}

}  // namespace dyn
