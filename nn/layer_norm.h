// Layer normalisation of one row (PyTorch's nn.LayerNorm over the last dimension, ε = 1e-5, biased variance):
// y = γ ⊙ (x − μ) / √(var + ε) + β, and its backward. One source of math for both backends (kernels/layer_norm.cu).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/backend.h"
#include "kernels/hd.h"

namespace dyn {

constexpr double kLayerNormEps = 1e-5;

// y [d] from x [d]; gain/bias may be nullptr (γ = 1, β = 0). Returns the row's mean and 1/√(var + ε) in mean/rstd.
template <class T>
DYN_HD void layer_norm_row(const T* x, int d, const T* gain, const T* bias, T* y, T& mean, T& rstd) {
  using std::sqrt;
  T s = T(0);
  for (int k = 0; k < d; ++k) s += x[k];
  const T mu = s / T(d);
  T v = T(0);
  for (int k = 0; k < d; ++k) v += (x[k] - mu) * (x[k] - mu);
  const T r = T(1) / sqrt(v / T(d) + T(kLayerNormEps));
  for (int k = 0; k < d; ++k) {
    const T xh = (x[k] - mu) * r;
    y[k] = (gain ? gain[k] : T(1)) * xh + (bias ? bias[k] : T(0));
  }
  mean = mu;
  rstd = r;
}

// dx [d] (written) from dy [d], with x̂ = (x − μ)·rstd: dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)),
// dx̂ = dy ⊙ γ. The gain and bias gradients (Σ over rows of dy ⊙ x̂ and dy) are the caller's column sums.
template <class T>
DYN_HD void layer_norm_row_backward(const T* x, int d, const T* gain, T mean, T rstd, const T* dy, T* dx) {
  T m1 = T(0), m2 = T(0);
  for (int k = 0; k < d; ++k) {
    const T g = dy[k] * (gain ? gain[k] : T(1));
    m1 += g;
    m2 += g * (x[k] - mean) * rstd;
  }
  m1 /= T(d);
  m2 /= T(d);
  for (int k = 0; k < d; ++k) {
    const T g = dy[k] * (gain ? gain[k] : T(1));
    dx[k] = rstd * (g - m1 - (x[k] - mean) * rstd * m2);
  }
}

// Rows of x [N, D] → y [N, D] with the per-row mean and rstd [N] saved for the backward (kernels/layer_norm.cu).
template <class T>
void layer_norm_forward(Backend b, const T* x, const T* gain, const T* bias, T* y, T* mean, T* rstd, int64_t n, int d);

// dx [N, D] (written, may alias dy) from dy [N, D]; dgain and dbias [D] (may be nullptr) accumulate Σ_rows dy ⊙ x̂
// and Σ_rows dy (one pass per column: the same sums on both backends).
template <class T>
void layer_norm_backward(Backend b, const T* x, const T* gain, const T* mean, const T* rstd, const T* dy, T* dx,
                         T* dgain, T* dbias, int64_t n, int d);

// The same for a seed batch of S layers: rows x [S, N, D] (mean, rstd [S, N]), seed s's gain and bias (and their
// gradients) at s · param_stride from gain and bias ([S, P] blobs). Seed s's figures are the op's on its own rows,
// bit for bit on both backends (each row and each column sum is computed as the op alone computes it).
template <class T>
void layer_norm_forward_seeds(Backend b, const T* x, const T* gain, const T* bias, size_t param_stride, T* y, T* mean,
                              T* rstd, int seeds, int64_t n, int d);
template <class T>
void layer_norm_backward_seeds(Backend b, const T* x, const T* gain, const T* mean, const T* rstd, const T* dy, T* dx,
                               T* dgain, T* dbias, size_t param_stride, int seeds, int64_t n, int d);

}  // namespace dyn
