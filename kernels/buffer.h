// RAII buffers on a backend: Buffer<T> owns n elements in host memory (CPU backend) or device memory (CUDA).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include "kernels/backend.h"
#include "kernels/check.h"

namespace dyn {

// An allocation that failed: how many bytes, on which backend (the command line names --envs with it).
struct OutOfMemory : std::bad_alloc {
  size_t bytes;
  Backend backend;
  OutOfMemory(size_t n, Backend b) : bytes(n), backend(b) {}
  const char* what() const noexcept override { return "out of memory"; }
};

// The first n values at src (backend memory) in a host vector (synchronous): Buffer::to_host, and small reads of
// part of a buffer for logs and traces.
template <class T>
std::vector<T> read_values(Backend b, const T* src, int64_t n) {
  std::vector<T> out(size_t(n > 0 ? n : 0));
  if (out.empty()) return out;
  if (b == Backend::cuda)
    cuda_copy(out.data(), src, out.size() * sizeof(T), cudaMemcpyDeviceToHost);
  else
    std::memcpy(out.data(), src, out.size() * sizeof(T));
  return out;
}

template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend b, size_t n) : backend_(b), n_(n) {
    if (n == 0) return;
    if (b == Backend::cuda) {
      void* p = nullptr;
      const cudaError_t e = cudaMalloc(&p, n * sizeof(T));
      if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();  // clear it: the process goes on to say what failed
        throw OutOfMemory(n * sizeof(T), b);
      }
      DYN_CUDA_CHECK(e);
      ptr_ = static_cast<T*>(p);
    } else {
      ptr_ = static_cast<T*>(std::aligned_alloc(64, round_up(n * sizeof(T))));
      if (!ptr_) throw OutOfMemory(n * sizeof(T), b);
    }
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    Buffer(std::move(o)).swap(*this);
    return *this;
  }
  ~Buffer() {
    if (!ptr_) return;
    if (backend_ == Backend::cuda)
      cudaFree(ptr_);  // no throw from a destructor
    else
      std::free(ptr_);
  }

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }
  Backend backend() const { return backend_; }

  // Byte-wise fill with zeros (queued on the backend's stream; capturable into a CUDA Graph).
  void zero() {
    if (!ptr_) return;
    if (backend_ == Backend::cuda)
      DYN_CUDA_CHECK(cudaMemsetAsync(ptr_, 0, bytes(), cuda_stream()));
    else
      std::memset(ptr_, 0, bytes());
  }

  // Copies the whole buffer to a host vector (synchronous).
  std::vector<T> to_host() const { return read_values(backend_, ptr_, int64_t(n_)); }

  // A new buffer on `b` holding `src` converted to T.
  template <class U = T>
  static Buffer copy_of(Backend b, const std::vector<U>& src) {
    Buffer out(b, src.size());
    out.from_host(std::vector<T>(src.begin(), src.end()));
    return out;
  }

  // Workspaces sized on use: reallocates (at least one element, contents undefined) unless the buffer already holds
  // n elements on backend b.
  void ensure(Backend b, size_t n) {
    if (n_ < n || backend_ != b || ptr_ == nullptr) *this = Buffer(b, n < 1 ? 1 : n);
  }

  // Becomes exactly `src` on backend b (reallocating when the size or backend differs).
  void assign(Backend b, const std::vector<T>& src) {
    if (n_ != src.size() || backend_ != b) *this = Buffer(b, src.size());
    from_host(src);
  }

  // Copies host data in; `src` must hold size() elements.
  void from_host(const std::vector<T>& src) {
    if (src.size() != n_) throw std::invalid_argument("Buffer::from_host: size mismatch");
    if (n_ == 0) return;
    if (backend_ == Backend::cuda)
      cuda_copy(ptr_, src.data(), bytes(), cudaMemcpyHostToDevice);
    else
      std::memcpy(ptr_, src.data(), bytes());
  }

 private:
  static size_t round_up(size_t bytes) { return (bytes + 63) / 64 * 64; }
  void swap(Buffer& o) noexcept {
    std::swap(backend_, o.backend_);
    std::swap(ptr_, o.ptr_);
    std::swap(n_, o.n_);
  }
  Backend backend_ = Backend::cpu;
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

}  // namespace dyn
