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

template <class F>
void parallel_for(Backend backend, int64_t n, F f) {
  if (n <= 0) return;
  if (backend == Backend::cuda) {
    // enough blocks to cover n, capped so huge n falls back to the grid-stride loop
    const int64_t blocks = (n + kParallelForBlock - 1) / kParallelForBlock;
    const unsigned grid = unsigned(blocks < (int64_t(1) << 20) ? blocks : (int64_t(1) << 20));
    parallel_for_kernel<<<grid, kParallelForBlock, 0, cuda_stream()>>>(n, f);
    DYN_CUDA_CHECK(cudaGetLastError());
  } else {
#pragma omp parallel for schedule(static) if (n >= kParallelForMinCpu)
    for (int64_t i = 0; i < n; ++i) f(i);
  }
}

}  // namespace dyn
