// Fully fused MLP kernels (device code), shared by kernels/fused_mlp.cu and the CPU emulation test
// tests/test_fused_emulated.cpp, which runs them with one host thread per CUDA thread. Launch constants and the
// layer table: kernels/fused_plans.h.
#pragma once

#include "kernels/fused_plans.h"
#include "nn/activation.h"

namespace dyn {
namespace fused_mlp {

// Weights [out, in] into wsm [W][S] (row stride S ≥ K + 1), zero-padded to W × K.
template <int W, int K, int S>
__device__ void load_weight(float* wsm, const float* w, int out, int in) {
  for (int i = threadIdx.x; i < W * K; i += kThreads) {
    const int j = i / K, k = i % K;
    wsm[j * S + k] = (j < out && k < in) ? w[j * in + k] : 0.0f;
  }
}

// Forward through every layer for a tile of 128 samples. W: the hidden (and output) width; WI ≥ W: the padded
// input width, so a first layer may read up to WI inputs (the belief trunk: 128 inputs into 64 units).
template <int W, int WI>
__global__ void __launch_bounds__(kThreads) fused_mlp_forward_kernel(FusedLayers L, const float* x, int batch) {
  static_assert(WI >= W, "the input tile holds every layer's output");
  constexpr int S = WI + 1;  // row stride of both tiles (odd: no bank conflicts)
  extern __shared__ float fused_smem[];
  float* act = fused_smem;              // [kTile][S]: the input (WI columns), then each layer's output (W)
  float* wsm = fused_smem + kTile * S;  // [W][S]
  constexpr int CB = W / kGroups;       // columns per thread: cg, cg + 16, ...
  const int rg = threadIdx.x / kGroups, cg = threadIdx.x % kGroups;
  const int row0 = blockIdx.x * kTile;

  // input tile, zero-padded to WI columns and past the batch
  const int in0 = L.in[0];
  for (int i = threadIdx.x; i < kTile * WI; i += kThreads) {
    const int r = i / WI, k = i % WI;
    act[r * S + k] = (row0 + r < batch && k < in0) ? x[size_t(row0 + r) * in0 + k] : 0.0f;
  }

  for (int l = 0; l < L.layers; ++l) {
    const int in = L.in[l], out = L.out[l];
    if (l == 0)
      load_weight<W, WI, S>(wsm, L.w[l], out, in);
    else
      load_weight<W, W, S>(wsm, L.w[l], out, in);
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
      for (int i = 0; i < kRowsPerThread; ++i) a[i] = act[(rg + kGroups * i) * S + k];
#pragma unroll
      for (int c = 0; c < CB; ++c) w[c] = wsm[(cg + kGroups * c) * S + k];
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
        act[r * S + col] = v;
        if (row0 + r < batch && col < out) L.act[l][size_t(row0 + r) * out + col] = v;
      }
    }
  }
}

template <int W>
__global__ void __launch_bounds__(kThreads)
    fused_mlp_backward_kernel(FusedLayers L, const float* dy, float* dx, bool accumulate_dx, int batch) {
  extern __shared__ float fused_smem[];
  float* g = fused_smem;                      // [kTile][W+1] gradient w.r.t. the current layer's pre-activation
  float* wsm = fused_smem + kTile * (W + 1);  // [W][W+1]
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
    load_weight<W, W, W + 1>(wsm, L.w[l], out, in);
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

}  // namespace fused_mlp
}  // namespace dyn
