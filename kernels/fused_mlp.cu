// Fully fused MLP forward and backward (CUDA, float). A block takes a tile of 128 samples through every layer
// with the tile's activations in shared memory and one layer's weights (zero-padded to W × W) beside them;
// each of the 256 threads owns an 8-row × (W/16)-column register tile. The backward kernel runs the same chain
// with transposed weights to get every layer's pre-activation gradient and dx; the weight gradients are then
// one cuBLAS GEMM per layer over the whole batch (as tiny-cuda-nn does), so no atomics are needed.
// Tested against the unfused path in tests/test_nn_gpu.cpp (label gpu).
#include <stdexcept>

#include "kernels/check.h"
#include "kernels/nvtx.h"
#include "nn/mlp.h"

namespace dyn {

namespace {

constexpr int kTile = 128;     // samples per block
constexpr int kThreads = 256;  // 16 row groups × 16 column groups
constexpr int kGroups = 16;
constexpr int kRowsPerThread = kTile / kGroups;  // 8: rows rg, rg + 16, ...
constexpr int kMaxLayers = 4;

struct FusedLayers {
  const float* w[kMaxLayers];  // [out_l, in_l]
  const float* b[kMaxLayers];  // [out_l]
  float* act[kMaxLayers];      // [B, out_l] post-activation outputs
  float* dpre[kMaxLayers];     // [B, out_l] pre-activation gradients (backward)
  int in[kMaxLayers], out[kMaxLayers];
  int layers;
  Activation hidden, output;
};

template <int W>
constexpr size_t smem_bytes() {
  return size_t(kTile + W) * (W + 1) * sizeof(float);  // tile [128][W+1] + weights [W][W+1]
}

// Weights [out, in] into wsm [W][W+1], zero-padded.
template <int W>
__device__ void load_weight(float* wsm, const float* w, int out, int in) {
  for (int i = threadIdx.x; i < W * W; i += kThreads) {
    const int j = i / W, k = i % W;
    wsm[j * (W + 1) + k] = (j < out && k < in) ? w[j * in + k] : 0.0f;
  }
}

template <int W>
__global__ void __launch_bounds__(kThreads) fused_mlp_forward_kernel(FusedLayers L, const float* x, int batch) {
  extern __shared__ float smem[];
  float* act = smem;                    // [kTile][W+1]
  float* wsm = smem + kTile * (W + 1);  // [W][W+1]
  constexpr int CB = W / kGroups;       // columns per thread: cg, cg + 16, ...
  const int rg = threadIdx.x / kGroups, cg = threadIdx.x % kGroups;
  const int row0 = blockIdx.x * kTile;

  // input tile, zero-padded to W columns and past the batch
  const int in0 = L.in[0];
  for (int i = threadIdx.x; i < kTile * W; i += kThreads) {
    const int r = i / W, k = i % W;
    act[r * (W + 1) + k] = (row0 + r < batch && k < in0) ? x[size_t(row0 + r) * in0 + k] : 0.0f;
  }

  for (int l = 0; l < L.layers; ++l) {
    const int in = L.in[l], out = L.out[l];
    load_weight<W>(wsm, L.w[l], out, in);
    __syncthreads();
    // acc = b + act · Wᵀ for this thread's 8 × CB outputs
    float acc[kRowsPerThread][CB];
#pragma unroll
    for (int c = 0; c < CB; ++c) {
      const int col = cg + kGroups * c;
      const float bias = col < out ? L.b[l][col] : 0.0f;
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) acc[i][c] = bias;
    }
    for (int k = 0; k < in; ++k) {
      float a[kRowsPerThread], w[CB];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) a[i] = act[(rg + kGroups * i) * (W + 1) + k];
#pragma unroll
      for (int c = 0; c < CB; ++c) w[c] = wsm[(cg + kGroups * c) * (W + 1) + k];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
        for (int c = 0; c < CB; ++c) acc[i][c] = fmaf(a[i], w[c], acc[i][c]);
    }
    __syncthreads();  // every read of act and wsm for this layer is done
    const Activation f = l == L.layers - 1 ? L.output : L.hidden;
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
      const int r = rg + kGroups * i;
#pragma unroll
      for (int c = 0; c < CB; ++c) {
        const int col = cg + kGroups * c;
        const float v = col < out ? activate(f, acc[i][c]) : 0.0f;
        act[r * (W + 1) + col] = v;
        if (row0 + r < batch && col < out) L.act[l][size_t(row0 + r) * out + col] = v;
      }
    }
  }
}

template <int W>
__global__ void __launch_bounds__(kThreads)
    fused_mlp_backward_kernel(FusedLayers L, const float* dy, float* dx, bool accumulate_dx, int batch) {
  extern __shared__ float smem[];
  float* g = smem;                      // [kTile][W+1] gradient w.r.t. the current layer's pre-activation
  float* wsm = smem + kTile * (W + 1);  // [W][W+1]
  constexpr int CB = W / kGroups;
  const int rg = threadIdx.x / kGroups, cg = threadIdx.x % kGroups;
  const int row0 = blockIdx.x * kTile;
  const int last = L.layers - 1, out_last = L.out[last];

  // g = act'(y) ⊙ dy for the last layer
  for (int i = threadIdx.x; i < kTile * W; i += kThreads) {
    const int r = i / W, j = i % W;
    float v = 0.0f;
    if (row0 + r < batch && j < out_last) {
      const size_t o = size_t(row0 + r) * out_last + j;
      v = activate_backward(L.output, L.act[last][o], dy[o]);
      L.dpre[last][o] = v;
    }
    g[r * (W + 1) + j] = v;
  }

  for (int l = last; l >= 0; --l) {
    if (l == 0 && !dx) break;
    const int in = L.in[l], out = L.out[l];
    load_weight<W>(wsm, L.w[l], out, in);
    __syncthreads();
    // h = g · W: gradient w.r.t. the layer's input
    float acc[kRowsPerThread][CB] = {};
    for (int j = 0; j < out; ++j) {
      float a[kRowsPerThread], w[CB];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) a[i] = g[(rg + kGroups * i) * (W + 1) + j];
#pragma unroll
      for (int c = 0; c < CB; ++c) w[c] = wsm[j * (W + 1) + cg + kGroups * c];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
        for (int c = 0; c < CB; ++c) acc[i][c] = fmaf(a[i], w[c], acc[i][c]);
    }
    __syncthreads();  // every read of g and wsm for this layer is done
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
      const int r = rg + kGroups * i;
      const bool valid = row0 + r < batch;
#pragma unroll
      for (int c = 0; c < CB; ++c) {
        const int k = cg + kGroups * c;
        if (l > 0) {
          // g of the previous layer: act'(its output) ⊙ h
          float v = 0.0f;
          if (valid && k < in) {
            const size_t o = size_t(row0 + r) * in + k;
            v = activate_backward(L.hidden, L.act[l - 1][o], acc[i][c]);
            L.dpre[l - 1][o] = v;
          }
          g[r * (W + 1) + k] = v;
        } else if (valid && k < in) {
          const size_t o = size_t(row0 + r) * in + k;
          dx[o] = accumulate_dx ? dx[o] + acc[i][c] : acc[i][c];
        }
      }
    }
  }
}

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
  DYN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const int blocks = (batch + kTile - 1) / kTile;
  kernel<<<blocks, kThreads, bytes>>>(args...);
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
