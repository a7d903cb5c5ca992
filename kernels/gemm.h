// Row-major GEMM on a backend: C[M, N] = alpha * op(A) · op(B) + beta * C, with op(X) = X or Xᵀ; and its batched
// form over a seed batch (S independent products of one shape, each matrix at a fixed stride from the last).
// CPU: OpenBLAS cblas_{s,d}gemm. CUDA: cuBLAS {S,D}gemm[StridedBatched] (row-major through Cᵀ = op(B)ᵀ op(A)ᵀ).
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace dyn {

// lda/ldb/ldc are row strides of the row-major arrays as stored (A is [M, K] or, transposed, [K, M]).
template <class T>
void gemm(Backend b, bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda, const T* bm,
          int ldb, T beta, T* c, int ldc);

// For s in [0, batch): C_s = alpha * op(A_s) · op(B_s) + beta * C_s with X_s = X + s · stride_x (elements; a stride
// of 0 shares one matrix among all products). On the CPU each product is exactly what gemm() computes for it alone
// (bit for bit): small products run one per OpenMP thread, large ones one after another over all threads. On CUDA
// it is one cuBLAS strided-batched call.
template <class T>
void gemm_strided_batched(Backend b, bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda,
                          int64_t stride_a, const T* bm, int ldb, int64_t stride_b, T beta, T* c, int ldc,
                          int64_t stride_c, int batch);

}  // namespace dyn
