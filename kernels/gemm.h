// Row-major GEMM on a backend: C[M, N] = alpha * op(A) · op(B) + beta * C, with op(X) = X or Xᵀ.
// CPU: OpenBLAS cblas_{s,d}gemm. CUDA: cuBLAS {S,D}gemm (row-major through Cᵀ = op(B)ᵀ op(A)ᵀ).
#pragma once

#include "kernels/backend.h"

namespace dyn {

// lda/ldb/ldc are row strides of the row-major arrays as stored (A is [M, K] or, transposed, [K, M]).
template <class T>
void gemm(Backend b, bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda, const T* bm,
          int ldb, T beta, T* c, int ldc);

}  // namespace dyn
