// parallel_for(backend, n, f): calls f(i) for i in [0, n) — a grid-stride CUDA kernel or an OpenMP host loop.
// Include only from .cu files: `f` is a DYN_HD functor or an extended __host__ __device__ lambda.
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "kernels/check.h"
#include "kernels/hd.h"

namespace dyn {

template <class F>
__global__ void parallel_for_kernel(int64_t n, F f) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) f(i);
}

constexpr int kParallelForBlock = 256;
// Below this many items the CPU loop runs on one thread: waking the OpenMP team costs more than it saves.
constexpr int64_t kParallelForMinCpu = 4096;

// min_cpu_items: below this many items the CPU loop runs on one thread (lower it for heavy items, e.g. a physics
// env step of tens of microseconds).
template <class F>
void parallel_for(Backend backend, int64_t n, F f, int64_t min_cpu_items = kParallelForMinCpu) {
  if (n <= 0) return;
  if (backend == Backend::cuda) {
    // enough blocks to cover n, capped so huge n falls back to the grid-stride loop
    const int64_t blocks = (n + kParallelForBlock - 1) / kParallelForBlock;
    const unsigned grid = unsigned(blocks < (int64_t(1) << 20) ? blocks : (int64_t(1) << 20));
    parallel_for_kernel<<<grid, kParallelForBlock, 0, cuda_stream()>>>(n, f);
    DYN_CUDA_CHECK(cudaGetLastError());
  } else {
#pragma omp parallel for schedule(static) if (n >= min_cpu_items)
    for (int64_t i = 0; i < n; ++i) f(i);
  }
}

// parallel_for for heavy items that keep large per-thread arrays (a physics env step): on CUDA the block size is the
// one that maximises this kernel's occupancy given its registers (cudaOccupancyMaxPotentialBlockSize, asked once per
// functor type, at its first launch, which is never inside a graph capture: StageGraphs runs a stage eagerly first).
template <class F>
void parallel_for_heavy(Backend backend, int64_t n, F f, int64_t min_cpu_items) {
  if (n <= 0) return;
  if (backend != Backend::cuda) {
    parallel_for(backend, n, f, min_cpu_items);
    return;
  }
  static const int block = [] {
    int min_grid = 0, best = 0;
    DYN_CUDA_CHECK(cudaOccupancyMaxPotentialBlockSize(&min_grid, &best, parallel_for_kernel<F>, 0, 0));
    return best > 0 ? best : kParallelForBlock;
  }();
  const int64_t blocks = (n + block - 1) / block;
  const unsigned grid = unsigned(blocks < (int64_t(1) << 20) ? blocks : (int64_t(1) << 20));
  parallel_for_kernel<<<grid, block, 0, cuda_stream()>>>(n, f);
  DYN_CUDA_CHECK(cudaGetLastError());
}

// f(r, c) for every element of a [rows, cols] grid: one CUDA thread per element, or on the CPU whole rows per
// thread with a contiguous inner loop — no integer division per element, which profiling showed costing more than
// the arithmetic in the bias and GRU-gate passes.
template <class F>
struct Flat2d {
  F f;
  int64_t cols;
  DYN_HD void operator()(int64_t i) const { f(i / cols, i % cols); }
};

template <class F>
void parallel_for_2d(Backend backend, int64_t rows, int64_t cols, F f) {
  if (rows <= 0 || cols <= 0) return;
  if (backend == Backend::cuda) {
    parallel_for(backend, rows * cols, Flat2d<F>{f, cols});
  } else {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelForMinCpu)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) f(r, c);
  }
}

}  // namespace dyn
