// The column-moments kernel (device code), shared by kernels/moments.cu and the CPU emulation test
// tests/test_running_norm.cpp, which runs it with one host thread per CUDA thread.
#pragma once

#include <cstdint>

namespace dyn {
namespace moments {

constexpr int kThreads = 256;

// Block b sums chunk c = b % chunks of run b / chunks (rows [c·chunk, min((c+1)·chunk, rows)) of the run's x
// [rows, dim], which starts rows·dim after the last run's; its shift is shifts[run], or `shift` for every run when
// shifts is null; its sums go to partial [runs, chunks, dim, 2]). Thread t works on column slot t % C of
// C = min(dim, 256) slots and lane t / C of 256 / C lanes; each lane strides over the chunk's rows, then the lanes
// of a column are added in shared memory in a fixed order. Reads are coalesced along each row.
// (A template on the input's scalar, T = float, so the header can be included by both its users.)
template <class T>
__global__ void __launch_bounds__(kThreads)
    column_moments_kernel(const T* x, int64_t rows, int dim, int64_t chunk, int chunks, const double* const* shifts,
                          const double* shift, double* partial) {
  extern __shared__ double moments_smem[];  // [256][2]: each thread's two sums
  const int64_t run = blockIdx.x / chunks;
  x += run * rows * dim;
  if (shifts) shift = shifts[run];
  partial += run * chunks * dim * 2;
  const int64_t block = blockIdx.x % chunks;
  const int slots = dim < kThreads ? dim : kThreads;
  const int lanes = kThreads / slots;
  const int t = int(threadIdx.x), slot = t % slots, lane = t / slots;
  const int64_t r0 = block * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
  for (int k0 = 0; k0 < dim; k0 += slots) {  // one group of columns at a time
    const int k = k0 + slot;
    double s1 = 0, s2 = 0;
    if (lane < lanes && k < dim) {
      const double c = shift[k];
      for (int64_t r = r0 + lane; r < r1; r += lanes) {
        const double v = double(x[r * dim + k]) - c;
        s1 += v;
        s2 += v * v;
      }
    }
    moments_smem[2 * t] = s1;
    moments_smem[2 * t + 1] = s2;
    __syncthreads();
    if (lane == 0 && k < dim) {  // the column's lanes, in lane order
      for (int l = 1; l < lanes; ++l) {
        s1 += moments_smem[2 * (l * slots + slot)];
        s2 += moments_smem[2 * (l * slots + slot) + 1];
      }
      partial[(block * dim + k) * 2] = s1;
      partial[(block * dim + k) * 2 + 1] = s2;
    }
    __syncthreads();  // the shared sums are read before the next group writes them
  }
}

}  // namespace moments
}  // namespace dyn
