// What a fused MLP or GRU launch needs, as plain host data: the layer pointers, the rows and the block count. The
// ops' dispatch (kernels/mlp.cu, kernels/gru.cu) builds a plan, and launches it on CUDA (kernels/fused_mlp.cu,
// kernels/fused_gru.cu); the CPU emulation test runs the very same plan through tests/cuda_emulation.h, so the
// choice of kernel, width and row offsets is tested on machines without a GPU. No CUDA keywords here.
#pragma once

#include <cstddef>
#include <cstdint>

#include "nn/activation.h"

namespace dyn {

namespace fused_mlp {

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

// Shared memory of a kernel of width W and padded input width WI: tile [128][WI+1] + weights [W][WI+1].
template <int W, int WI = W>
constexpr size_t smem_bytes() {
  return size_t(kTile + W) * (WI + 1) * sizeof(float);
}

}  // namespace fused_mlp

namespace fused_gru {

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

// NB of the kernel for hidden width 64 or 128.
constexpr int streams_per_block(int hidden) { return hidden == 64 ? GruTile<64>::NB : GruTile<128>::NB; }

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

}  // namespace fused_gru

// One fused MLP forward launch over rows [row0, row0 + rows) of an input: layers' outputs written at those rows.
struct FusedMlpPlan {
  int width = 0;        // the kernel's width W (hidden and output): 32, 64 or 128
  int in_width = 0;     // its padded input width WI ≥ W: 32, 64 or 128
  unsigned blocks = 0;  // ⌈rows / 128⌉
  fused_mlp::FusedLayers layers{};
  const float* x = nullptr;  // [rows, in]: the plan's first input row
  int rows = 0;
};

// One fused GRU launch over steps [t0, t1) of a sequence (pointers already offset to step t0).
struct FusedGruPlan {
  int hidden = 0;       // 64 or 128
  unsigned blocks = 0;  // ⌈streams / NB⌉
  const float *w_hh = nullptr, *b_hh = nullptr;
  const float* gi = nullptr;       // [steps, N, 3H]
  const uint8_t* reset = nullptr;  // [steps, N] or nullptr (never)
  const float* h0 = nullptr;       // [N, H] or nullptr (zeros)
  int steps = 0, streams = 0;
  fused_gru::GruOut out{};
};

}  // namespace dyn
