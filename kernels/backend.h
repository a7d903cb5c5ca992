// Backend selection: the CPU (OpenMP host loops) or CUDA; device probe and `--device auto|cpu|cuda` resolution.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace dyn {

enum class Backend { cpu, cuda };

const char* backend_name(Backend b);

// Number of usable CUDA devices; 0 when there is no driver or no device (never throws).
int cuda_device_count();

// Name and memory of device 0, e.g. "NVIDIA H100 80GB HBM3 (79.1 GiB, sm_90)"; "" without a device.
std::string cuda_device_description();

struct BackendUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Resolves "auto" | "cpu" | "cuda". "auto" picks CUDA when a device is present, else the CPU and sets
// *notice to a one-line explanation. "cuda" without a device throws BackendUnavailable.
Backend select_backend(const std::string& device, std::string* notice);

// Whether ops may take their fused CUDA kernels where the shape fits (default on; `run.fused_kernels = false`
// turns them off, and tests and benchmarks switch to compare the fused and the GEMM paths). Process-wide.
bool fused_kernels_enabled();
void set_fused_kernels(bool enabled);

// Blocks until all work this host thread queued on the backend is done (no-op on the CPU).
void synchronize(Backend b);

// The CUDA stream all our kernels, cuBLAS calls, CUB reductions and async fills go to: one per host thread (created
// on first use), so the runs of a seed batch (host/train.h), one per thread, overlap on the GPU, and everything one
// run queues stays in order. A named stream rather than stream 0 because only a named stream can be captured into a
// CUDA Graph.
cudaStream_t cuda_stream();

// A copy between host and device memory, queued on this thread's stream after its work and waited for.
void cuda_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);

}  // namespace dyn
