// Runs CUDA kernels on the host to check their logic (indexing, shared memory, synchronisation) without a GPU:
// one std::thread per CUDA thread of a block, blocks one after another, __syncthreads() as a barrier over the
// block's threads. Include after every CUDA-runtime header and before the kernel header; define the kernel's
// `extern __shared__` array at namespace scope in the test. Timing means nothing here; results do.
#pragma once

#include <pthread.h>

#include <thread>
#include <vector>

// (the test target is compiled with -Wno-unknown-pragmas for the kernels' #pragma unroll)

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__
#define __launch_bounds__(...)

struct EmuDim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline thread_local EmuDim3 threadIdx;
inline EmuDim3 blockIdx, blockDim, gridDim;  // one block runs at a time
inline pthread_barrier_t emu_barrier;

inline void __syncthreads() { pthread_barrier_wait(&emu_barrier); }

template <class Kernel, class... Args>
void emulate_launch(unsigned grid, unsigned block, Kernel kernel, Args... args) {
  gridDim.x = grid;
  blockDim.x = block;
  pthread_barrier_init(&emu_barrier, nullptr, block);
  for (unsigned b = 0; b < grid; ++b) {
    blockIdx.x = b;
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned t = 0; t < block; ++t)
      threads.emplace_back([=] {
        threadIdx.x = t;
        kernel(args...);
      });
    for (std::thread& th : threads) th.join();
  }
  pthread_barrier_destroy(&emu_barrier);
}
