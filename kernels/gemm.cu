// GEMM through OpenBLAS (CPU) or cuBLAS (CUDA), with checked cuBLAS calls.
#include "kernels/gemm.h"

#include <cblas.h>
#include <cublas_v2.h>
#include <omp.h>

#include <stdexcept>
#include <string>

#include "kernels/buffer.h"
#include "kernels/check.h"

namespace dyn {

namespace {

void cublas_check(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw CudaError(std::string("cuBLAS error ") + cublasGetStatusName(s) + " from " + what + " at " + file + ":" +
                    std::to_string(line));
}
#define DYN_CUBLAS_CHECK(call) cublas_check((call), #call, __FILE__, __LINE__)

// cuBLAS' workspace for one handle: the size NVIDIA's cublasSetWorkspace documentation recommends, 32 MiB on
// Hopper and later, 4 MiB before.
size_t cublas_workspace_bytes() {
  int device = 0, major = 0;
  DYN_CUDA_CHECK(cudaGetDevice(&device));
  DYN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return (major >= 9 ? size_t(32) : size_t(4)) << 20;
}

// One handle per host thread, created on first use, on our stream, with a fixed workspace of its own: without one,
// cuBLAS allocates workspace as it goes, and a graph capture must not allocate (each capture would also keep a new
// workspace alive). The handle and its workspace live as long as the thread.
cublasHandle_t cublas_handle() {
  thread_local Buffer<uint8_t> workspace;
  thread_local cublasHandle_t handle = [] {
    cublasHandle_t h = nullptr;
    DYN_CUBLAS_CHECK(cublasCreate(&h));
    DYN_CUBLAS_CHECK(cublasSetStream(h, cuda_stream()));
    workspace = Buffer<uint8_t>(Backend::cuda, cublas_workspace_bytes());
    DYN_CUBLAS_CHECK(cublasSetWorkspace(h, workspace.data(), workspace.bytes()));
    return h;
  }();
  return handle;
}

cublasStatus_t cublas_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float* alpha, const float* a, int lda, const float* b, int ldb, const float* beta,
                           float* c, int ldc) {
  return cublasSgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
cublasStatus_t cublas_gemm_strided(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const float* alpha, const float* a, int lda, int64_t sa, const float* b, int ldb,
                                   int64_t sb, const float* beta, float* c, int ldc, int64_t sc, int batch) {
  return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}
cublasStatus_t cublas_gemm_strided(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const double* alpha, const double* a, int lda, int64_t sa, const double* b, int ldb,
                                   int64_t sb, const double* beta, double* c, int ldc, int64_t sc, int batch) {
  return cublasDgemmStridedBatched(h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}
cublasStatus_t cublas_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const double* alpha, const double* a, int lda, const double* b, int ldb, const double* beta,
                           double* c, int ldc) {
  return cublasDgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cpu_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha, const float* a, int lda,
              const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void cpu_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha, const double* a, int lda,
              const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// The CPU GEMM runs inside our OpenMP team: OpenBLAS is kept single-threaded and each thread multiplies a block
// of C's rows (or columns, when C has few rows). OpenBLAS' own pthreads and an OpenMP team on the same cores
// spin against each other: measured on the 2-core machine, PPO with 16 envs ran at 19k frames/s that way and
// 66k with single-threaded OpenBLAS.
constexpr int64_t kMinParallelFlops = int64_t(1) << 22;
constexpr int kMinBlock = 16;

void single_threaded_openblas() {
  static const bool single = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)single;
}

// Whether cpu_gemm_parallel multiplies this shape on one thread: too few threads, FLOPs or rows and columns to split.
bool gemm_on_one_thread(int m, int n, int k, int threads) {
  return threads == 1 || 2 * int64_t(m) * n * k < kMinParallelFlops || (m < 2 * kMinBlock && n < 2 * kMinBlock);
}

CBLAS_TRANSPOSE cblas_op(bool trans) { return trans ? CblasTrans : CblasNoTrans; }

template <class T>
void cpu_gemm_parallel(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda, const T* b,
                       int ldb, T beta, T* c, int ldc) {
  single_threaded_openblas();
  const CBLAS_TRANSPOSE ta = cblas_op(trans_a), tb = cblas_op(trans_b);
  const int threads = omp_get_max_threads();
  if (gemm_on_one_thread(m, n, k, threads)) {
    cpu_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool by_rows = m >= n || m >= threads * kMinBlock;
  const int extent = by_rows ? m : n;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int lo = int(int64_t(extent) * t / nt), hi = int(int64_t(extent) * (t + 1) / nt);
    if (hi > lo) {
      if (by_rows)  // rows [lo, hi) of C = rows of op(A)
        cpu_gemm(ta, tb, hi - lo, n, k, alpha, trans_a ? a + lo : a + int64_t(lo) * lda, lda, b, ldb, beta,
                 c + int64_t(lo) * ldc, ldc);
      else  // columns [lo, hi) of C = columns of op(B)
        cpu_gemm(ta, tb, m, hi - lo, k, alpha, a, lda, trans_b ? b + int64_t(lo) * ldb : b + lo, ldb, beta, c + lo,
                 ldc);
    }
  }
}

}  // namespace

template <class T>
void gemm(Backend backend, bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda, const T* b,
          int ldb, T beta, T* c, int ldc) {
  if (m == 0 || n == 0) return;
  if (backend == Backend::cpu) {
    cpu_gemm_parallel(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // row-major C = op(A) op(B)  <=>  column-major Cᵀ = op(B)ᵀ op(A)ᵀ, where a row-major X is a column-major Xᵀ
  DYN_CUBLAS_CHECK(cublas_gemm(cublas_handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                               trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
}

template <class T>
void gemm_strided_batched(Backend backend, bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a,
                          int lda, int64_t stride_a, const T* b, int ldb, int64_t stride_b, T beta, T* c, int ldc,
                          int64_t stride_c, int batch) {
  if (m == 0 || n == 0 || batch <= 0) return;
  if (batch == 1) {  // one product: the plain call (on CUDA, cuBLAS' non-batched kernels)
    gemm<T>(backend, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  if (backend == Backend::cuda) {
    DYN_CUBLAS_CHECK(cublas_gemm_strided(cublas_handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                         trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb, stride_b, a, lda,
                                         stride_a, &beta, c, ldc, stride_c, batch));
    return;
  }
  const int threads = omp_get_max_threads();
  if (threads > 1 && gemm_on_one_thread(m, n, k, threads)) {
    // each product is the one-thread call gemm() would make for it alone, so the results do not depend on the batch
    single_threaded_openblas();
    const CBLAS_TRANSPOSE ta = cblas_op(trans_a), tb = cblas_op(trans_b);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int s = 0; s < batch; ++s)
      cpu_gemm(ta, tb, m, n, k, alpha, a + s * stride_a, lda, b + s * stride_b, ldb, beta, c + s * stride_c, ldc);
    return;
  }
  for (int s = 0; s < batch; ++s)
    cpu_gemm_parallel(trans_a, trans_b, m, n, k, alpha, a + s * stride_a, lda, b + s * stride_b, ldb, beta,
                      c + s * stride_c, ldc);
}

template void gemm<float>(Backend, bool, bool, int, int, int, float, const float*, int, const float*, int, float,
                          float*, int);
template void gemm<double>(Backend, bool, bool, int, int, int, double, const double*, int, const double*, int, double,
                           double*, int);
template void gemm_strided_batched<float>(Backend, bool, bool, int, int, int, float, const float*, int, int64_t,
                                          const float*, int, int64_t, float, float*, int, int64_t, int);
template void gemm_strided_batched<double>(Backend, bool, bool, int, int, int, double, const double*, int, int64_t,
                                           const double*, int, int64_t, double, double*, int, int64_t, int);

}  // namespace dyn
