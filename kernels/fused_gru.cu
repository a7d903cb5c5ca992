// Fused GRU forward over a whole sequence (CUDA, float). After one GEMM for the input projection of all steps,
// a single launch runs every step: each block owns NB streams and keeps W_hh ([3H][H+1], padded) and its
// streams' hidden state in shared memory for all T steps; each of the 256 threads computes NT streams × U units
// × 3 gates of W_hh h per step from shared memory, then the gate math (nn/gru_cell.h). The stored gates, hprev
// and outputs match Gru::forward, so the unfused backward applies. Tested against the CPU path in
// tests/test_nn_gpu.cpp (label gpu).
#include <stdexcept>

#include "kernels/check.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "nn/gru.h"
#include "nn/gru_cell.h"
#include "nn/mlp.h"

namespace dyn {

namespace {

constexpr int kThreads = 256;

// Block shapes: NB streams per block, NT streams and U units per thread; (NB / NT) · (H / U) = 256 threads.
template <int H>
struct GruTile;
template <>
struct GruTile<64> {
  static constexpr int NB = 64, NT = 4, U = 4;
};
template <>
struct GruTile<128> {
  static constexpr int NB = 32, NT = 2, U = 8;
};

template <int H>
constexpr size_t gru_smem_bytes() {
  return size_t(3 * H + GruTile<H>::NB) * (H + 1) * sizeof(float);  // W_hh [3H][H+1] + h [NB][H+1]
}

struct GruOut {
  float* h;      // [T, N, H]
  float* hprev;  // [T, N, H]
  float* gates;  // [T, N, 3H]
  float* ghn;    // [T, N, H]
};

template <int H>
__global__ void __launch_bounds__(kThreads)
    fused_gru_forward_kernel(const float* w_hh, const float* b_hh, const float* gi, const uint8_t* reset,
                             const float* h0, int steps, int n_streams, GruOut out) {
  constexpr int NB = GruTile<H>::NB, NT = GruTile<H>::NT, U = GruTile<H>::U;
  constexpr int JG = H / U;    // unit groups: units jg, jg + JG, ...
  constexpr int NG = NB / NT;  // stream groups: rows ng, ng + NG, ...
  static_assert(NG * JG == kThreads, "tile must use 256 threads");
  extern __shared__ float smem[];
  float* wsm = smem;                   // [3H][H+1]
  float* hs = smem + 3 * H * (H + 1);  // [NB][H+1]
  const int ng = threadIdx.x / JG, jg = threadIdx.x % JG;
  const int n0 = blockIdx.x * NB;

  for (int i = threadIdx.x; i < 3 * H * H; i += kThreads) wsm[(i / H) * (H + 1) + i % H] = w_hh[i];
  for (int i = threadIdx.x; i < NB * H; i += kThreads) {
    const int r = i / H, j = i % H;
    hs[r * (H + 1) + j] = n0 + r < n_streams ? h0[size_t(n0 + r) * H + j] : 0.0f;
  }
  float bias[U][3];
#pragma unroll
  for (int u = 0; u < U; ++u)
#pragma unroll
    for (int g = 0; g < 3; ++g) bias[u][g] = b_hh[g * H + jg + JG * u];

  for (int t = 0; t < steps; ++t) {
    __syncthreads();  // the previous step's h is written
    if (reset) {      // the step starts from zeros where an episode starts
      for (int i = threadIdx.x; i < NB * H; i += kThreads) {
        const int r = i / H;
        if (n0 + r < n_streams && reset[size_t(t) * n_streams + n0 + r]) hs[r * (H + 1) + i % H] = 0.0f;
      }
      __syncthreads();
    }
    // gh = W_hh h + b_hh for this thread's NT streams × U units × 3 gates
    float acc[NT][U][3];
#pragma unroll
    for (int s = 0; s < NT; ++s)
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int g = 0; g < 3; ++g) acc[s][u][g] = bias[u][g];
    for (int k = 0; k < H; ++k) {
      float a[NT];
#pragma unroll
      for (int s = 0; s < NT; ++s) a[s] = hs[(ng + NG * s) * (H + 1) + k];
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int g = 0; g < 3; ++g) {
          const float w = wsm[(g * H + jg + JG * u) * (H + 1) + k];
#pragma unroll
          for (int s = 0; s < NT; ++s) acc[s][u][g] = fmaf(a[s], w, acc[s][u][g]);
        }
    }
    // gate math and outputs
    float hnew[NT][U];
#pragma unroll
    for (int s = 0; s < NT; ++s) {
      const int r = ng + NG * s, n = n0 + r;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int j = jg + JG * u;
        const float hp = hs[r * (H + 1) + j];
        hnew[s][u] = hp;
        if (n >= n_streams) continue;
        const size_t row = size_t(t) * n_streams + n;
        const float* git = gi + row * 3 * H;
        const GruUnit<float> c =
            gru_cell_forward(git[j], git[H + j], git[2 * H + j], acc[s][u][0], acc[s][u][1], acc[s][u][2], hp);
        hnew[s][u] = c.h;
        out.h[row * H + j] = c.h;
        out.hprev[row * H + j] = hp;
        out.gates[row * 3 * H + j] = c.r;
        out.gates[row * 3 * H + H + j] = c.z;
        out.gates[row * 3 * H + 2 * H + j] = c.n;
        out.ghn[row * H + j] = acc[s][u][2];
      }
    }
    __syncthreads();  // every read of h for this step is done
#pragma unroll
    for (int s = 0; s < NT; ++s)
#pragma unroll
      for (int u = 0; u < U; ++u) hs[(ng + NG * s) * (H + 1) + jg + JG * u] = hnew[s][u];
  }
}

template <int H>
void launch_gru(const float* params, const Gru& gru, const float* gi, const uint8_t* reset, const float* h0, int steps,
                int batch, GruOut out) {
  const size_t bytes = gru_smem_bytes<H>();
  DYN_CUDA_CHECK(
      cudaFuncSetAttribute(fused_gru_forward_kernel<H>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const int blocks = (batch + GruTile<H>::NB - 1) / GruTile<H>::NB;
  fused_gru_forward_kernel<H><<<blocks, kThreads, bytes>>>(
      params + gru.weight_hh_offset(), params + gru.bias_hh_offset(), gi, reset, h0, steps, batch, out);
  DYN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

bool fused_gru_supported(int hidden) { return hidden == 64 || hidden == 128; }

void gru_forward_fused(const Gru& gru, const float* params, const float* x, const uint8_t* reset, const float* inject,
                       const float* h0, int steps, int batch, GruWorkspace<float>& ws) {
  DYN_NVTX_RANGE("gru_forward_fused");
  const int H = gru.hidden();
  if (!fused_gru_supported(H)) throw std::invalid_argument("gru_forward_fused: hidden size must be 64 or 128");
  ws.reserve(Backend::cuda, steps, batch, H);
  // gi = x W_ihᵀ + b_ih (+ injection) for all steps: one GEMM
  linear_forward(Backend::cuda, x, params + gru.weight_ih_offset(), params + gru.bias_ih_offset(), ws.gi.data(),
                 steps * batch, gru.input(), 3 * H);
  float* gi = ws.gi.data();
  if (inject)
    parallel_for(Backend::cuda, int64_t(steps) * batch * 3 * H, [=] DYN_LAMBDA(int64_t i) { gi[i] += inject[i]; });
  const GruOut out{ws.h.data(), ws.hprev.data(), ws.gates.data(), ws.ghn.data()};
  if (H == 64)
    launch_gru<64>(params, gru, gi, reset, h0, steps, batch, out);
  else
    launch_gru<128>(params, gru, gi, reset, h0, steps, batch, out);
}

}  // namespace dyn
