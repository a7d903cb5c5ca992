// Fused GRU forward kernel (device code), shared by kernels/fused_gru.cu and the CPU emulation test
// tests/test_fused_emulated.cpp, which runs it with one host thread per CUDA thread.
#pragma once

#include <cstdint>

#include "kernels/fused_plans.h"
#include "nn/gru_cell.h"

namespace dyn {
namespace fused_gru {

template <int H>
__global__ void __launch_bounds__(kThreads)
    fused_gru_forward_kernel(const float* w_hh, const float* b_hh, const float* gi, const uint8_t* reset,
                             const float* h0, int steps, int n_streams, GruOut out) {
  constexpr int NB = GruTile<H>::NB, NT = GruTile<H>::NT, U = GruTile<H>::U;
  constexpr int JG = H / U;    // unit groups: units jg, jg + JG, ...
  constexpr int NG = NB / NT;  // stream groups: rows ng, ng + NG, ...
  static_assert(NG * JG == kThreads, "tile must use 256 threads");
  extern __shared__ float fused_smem[];
  float* wsm = fused_smem;                   // [3H][H+1]
  float* hs = fused_smem + 3 * H * (H + 1);  // [NB][H+1]
  const int ng = threadIdx.x / JG, jg = threadIdx.x % JG;
  const int n0 = blockIdx.x * NB;

  for (int i = threadIdx.x; i < 3 * H * H; i += kThreads) wsm[(i / H) * (H + 1) + i % H] = w_hh[i];
  for (int i = threadIdx.x; i < NB * H; i += kThreads) {
    const int r = i / H, j = i % H;
    hs[r * (H + 1) + j] = (h0 && n0 + r < n_streams) ? h0[size_t(n0 + r) * H + j] : 0.0f;  // h0 = nullptr: zeros
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

}  // namespace fused_gru
}  // namespace dyn
