// Checked CUDA calls: every runtime call is wrapped so a failure names the call, file and line.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace dyn {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line) {
  throw CudaError(std::string("CUDA error '") + cudaGetErrorString(err) + "' (" + cudaGetErrorName(err) + ") from " +
                  what + " at " + file + ":" + std::to_string(line));
}

}  // namespace dyn

#define DYN_CUDA_CHECK(call)                                                                   \
  do {                                                                                         \
    cudaError_t dyn_err_ = (call);                                                             \
    if (dyn_err_ != cudaSuccess) ::dyn::throw_cuda_error(dyn_err_, #call, __FILE__, __LINE__); \
  } while (0)
