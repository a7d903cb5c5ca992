// DYN_HD: marks math that is compiled for both the host (CPU backend) and the device (CUDA backend).
#pragma once

#if defined(__CUDACC__)
#define DYN_HD __host__ __device__ __forceinline__
#define DYN_LAMBDA __host__ __device__  // for extended lambdas: [=] DYN_LAMBDA(int64_t i) { ... }
#else
#define DYN_HD inline
#define DYN_LAMBDA
#endif
