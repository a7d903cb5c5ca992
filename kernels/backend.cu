// Backend selection and device probe.
#include "kernels/backend.h"

#include <cstdio>

#include "kernels/check.h"

namespace dyn {

const char* backend_name(Backend b) { return b == Backend::cuda ? "cuda" : "cpu"; }

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" / "no device" error
    return 0;
  }
  return n;
}

std::string cuda_device_description() {
  if (cuda_device_count() == 0) return "";
  cudaDeviceProp p{};
  DYN_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  char mem[32];
  std::snprintf(mem, sizeof mem, "%.1f", double(p.totalGlobalMem) / 1073741824.0);
  return std::string(p.name) + " (" + mem + " GiB, sm_" + std::to_string(p.major) + std::to_string(p.minor) + ")";
}

Backend select_backend(const std::string& device, std::string* notice) {
  if (device == "cpu") return Backend::cpu;
  const int n = cuda_device_count();
  if (device == "cuda") {
    if (n == 0) throw BackendUnavailable("--device cuda: no CUDA device found (use --device cpu or auto)");
    return Backend::cuda;
  }
  if (device != "auto") throw std::invalid_argument("device must be one of auto, cpu, cuda; got '" + device + "'");
  if (n > 0) return Backend::cuda;
  if (notice) *notice = "no CUDA device found; running on the CPU backend";
  return Backend::cpu;
}

namespace {
bool g_fused_kernels = true;
}  // namespace

bool fused_kernels_enabled() { return g_fused_kernels; }
void set_fused_kernels(bool enabled) { g_fused_kernels = enabled; }

void synchronize(Backend b) {
  if (b == Backend::cuda) DYN_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
}

cudaStream_t cuda_stream() {
  thread_local const cudaStream_t stream = [] {
    cudaStream_t s = nullptr;
    DYN_CUDA_CHECK(cudaStreamCreate(&s));
    return s;
  }();
  return stream;
}

void cuda_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  DYN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, cuda_stream()));
  DYN_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
}

}  // namespace dyn
