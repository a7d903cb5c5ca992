// Fully fused MLP forward and backward (CUDA, float). A block takes a tile of 128 samples through every layer
// with the tile's activations in shared memory and one layer's weights (zero-padded to W × W) beside them;
// each of the 256 threads owns an 8-row × (W/16)-column register tile. The backward kernel runs the same chain
// with transposed weights to get every layer's pre-activation gradient and dx; the weight gradients are then
// one cuBLAS GEMM per layer over the whole batch (as tiny-cuda-nn does), so no atomics are needed.
// Tested against the unfused path in tests/test_nn_gpu.cpp (label gpu).
#include <stdexcept>

#include "kernels/check.h"
#include "kernels/fused_mlp_kernels.cuh"
#include "kernels/nvtx.h"
#include "nn/mlp.h"

namespace dyn {

namespace {

using namespace fused_mlp;

// The padded width W: the hidden width, or for a single layer the smallest of 32, 64, 128 that holds it.
int fused_width(const MlpShape& s) {
  if (s.layers() >= 2) return s.sizes[1];
  if (s.layers() < 1) return 0;
  const int need = s.sizes[0] > s.sizes[1] ? s.sizes[0] : s.sizes[1];
  for (int w : {32, 64, 128})
    if (need <= w) return w;
  return 0;
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

template <int W, class Kernel, class... Args>
void launch(Kernel kernel, int batch, Args... args) {
  const size_t bytes = smem_bytes<W>();
  static const bool opted_in = [&] {  // once per kernel: allow more than 48 KiB of dynamic shared memory
    DYN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    return true;
  }();
  (void)opted_in;
  const int blocks = (batch + kTile - 1) / kTile;
  kernel<<<blocks, kThreads, bytes, cuda_stream()>>>(args...);
  DYN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

bool fused_mlp_supported(const MlpShape& s) {
  const int w = fused_width(s);
  if (w != 32 && w != 64 && w != 128) return false;
  if (s.layers() < 1 || s.layers() > kMaxLayers) return false;
  for (int l = 1; l < s.layers(); ++l)
    if (s.sizes[l] != w) return false;
  return s.sizes.front() <= w && s.sizes.back() <= w;
}

void mlp_forward_fused(const Mlp& mlp, const float* params, const float* x, int batch, MlpWorkspace<float>& ws) {
  DYN_NVTX_RANGE("mlp_forward_fused");
  const MlpShape& s = mlp.shape();
  if (!fused_mlp_supported(s))
    throw std::invalid_argument("mlp_forward_fused: shape not supported by the fused kernel");
  ws.reserve(Backend::cuda, s, batch);
  const FusedLayers L = fused_layers(mlp, params, ws, false);
  switch (fused_width(s)) {
    case 32:
      launch<32>(fused_mlp_forward_kernel<32>, batch, L, x, batch);
      break;
    case 64:
      launch<64>(fused_mlp_forward_kernel<64>, batch, L, x, batch);
      break;
    default:
      launch<128>(fused_mlp_forward_kernel<128>, batch, L, x, batch);
      break;
  }
}

void mlp_backward_fused(const Mlp& mlp, const float* params, float* grads, const float* x, const float* dy, float* dx,
                        MlpWorkspace<float>& ws, bool accumulate) {
  DYN_NVTX_RANGE("mlp_backward_fused");
  const MlpShape& s = mlp.shape();
  if (!fused_mlp_supported(s))
    throw std::invalid_argument("mlp_backward_fused: shape not supported by the fused kernel");
  const int batch = ws.batch;
  if (int(ws.dpre.size()) != s.layers() || ws.dpre[0].size() < size_t(batch) * s.sizes[1]) {
    ws.dpre.clear();
    for (int l = 0; l < s.layers(); ++l) ws.dpre.emplace_back(Backend::cuda, size_t(batch) * s.sizes[l + 1]);
  }
  const FusedLayers L = fused_layers(mlp, params, ws, true);
  switch (fused_width(s)) {
    case 32:
      launch<32>(fused_mlp_backward_kernel<32>, batch, L, dy, dx, accumulate, batch);
      break;
    case 64:
      launch<64>(fused_mlp_backward_kernel<64>, batch, L, dy, dx, accumulate, batch);
      break;
    default:
      launch<128>(fused_mlp_backward_kernel<128>, batch, L, dy, dx, accumulate, batch);
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
