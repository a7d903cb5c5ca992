// DYN_HD: marks math that is compiled for both the host (CPU backend) and the device (CUDA backend).
#pragma once

#if defined(__CUDACC__)
#define DYN_HD __host__ __device__ __forceinline__
#define DYN_LAMBDA __host__ __device__  // for extended lambdas: [=] DYN_LAMBDA(int64_t i) { ... }
#else
#define DYN_HD inline
#define DYN_LAMBDA
#endif

namespace dyn {

// *p += v from any thread: atomicAdd on the device, an OpenMP atomic on the host (parallel_for's CPU loop may run
// on several threads).
DYN_HD void atomic_add_hd(double* p, double v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(p, v);
#else
#pragma omp atomic
  *p += v;
#endif
}

}  // namespace dyn
