// Batched layer normalisation over the DYN_HD rows of nn/layer_norm.h: one item per row, and one per column for the
// gain and bias gradients — for one layer, or a seed batch's S layers (row i is seed i / n's, column k seed k / d's).
#include "kernels/parallel_for.cuh"
#include "nn/layer_norm.h"

namespace dyn {

namespace {

// A seed's gain or bias: nullptr stays nullptr (no affine part).
template <class T>
DYN_HD const T* of_seed(const T* p, int64_t seed, size_t param_stride) {
  return p ? p + size_t(seed) * param_stride : p;
}

template <class T>
struct LayerNormRows {
  const T *x, *gain, *bias;
  T *y, *mean, *rstd;
  int d;
  int64_t n;  // rows per seed
  size_t param_stride;
  DYN_HD void operator()(int64_t i) const {
    T m, r;
    const int64_t s = i / n;
    layer_norm_row(x + i * d, d, of_seed(gain, s, param_stride), of_seed(bias, s, param_stride), y + i * d, m, r);
    if (mean) mean[i] = m;
    if (rstd) rstd[i] = r;
  }
};

template <class T>
struct LayerNormBackRows {
  const T *x, *gain, *mean, *rstd, *dy;
  T* dx;
  int d;
  int64_t n;  // rows per seed
  size_t param_stride;
  DYN_HD void operator()(int64_t i) const {
    layer_norm_row_backward(x + i * d, d, of_seed(gain, i / n, param_stride), mean[i], rstd[i], dy + i * d, dx + i * d);
  }
};

// Column k of seed s (item s · d + k): Σ over the seed's rows of dy ⊙ x̂ into its dgain[k], Σ dy into its dbias[k].
template <class T>
struct LayerNormParamGrads {
  const T *x, *mean, *rstd, *dy;
  T *dgain, *dbias;
  int64_t n;  // rows per seed
  int d;
  size_t param_stride;
  DYN_HD void operator()(int64_t item) const {
    const int64_t s = item / d, k = item % d, row0 = s * n;
    T sg = T(0), sb = T(0);
    for (int64_t i = row0; i < row0 + n; ++i) {
      sg += dy[i * d + k] * (x[i * d + k] - mean[i]) * rstd[i];
      sb += dy[i * d + k];
    }
    if (dgain) dgain[size_t(s) * param_stride + k] += sg;
    if (dbias) dbias[size_t(s) * param_stride + k] += sb;
  }
};

}  // namespace

template <class T>
void layer_norm_forward_seeds(Backend b, const T* x, const T* gain, const T* bias, size_t param_stride, T* y, T* mean,
                              T* rstd, int seeds, int64_t n, int d) {
  if (n <= 0) return;
  parallel_for(b, int64_t(seeds) * n, LayerNormRows<T>{x, gain, bias, y, mean, rstd, d, n, param_stride});
}

template <class T>
void layer_norm_backward_seeds(Backend b, const T* x, const T* gain, const T* mean, const T* rstd, const T* dy, T* dx,
                               T* dgain, T* dbias, size_t param_stride, int seeds, int64_t n, int d) {
  if (n <= 0) return;
  // the parameter sums read dy before dx may overwrite it
  if (dgain || dbias)
    parallel_for(b, int64_t(seeds) * d, LayerNormParamGrads<T>{x, mean, rstd, dy, dgain, dbias, n, d, param_stride});
  parallel_for(b, int64_t(seeds) * n, LayerNormBackRows<T>{x, gain, mean, rstd, dy, dx, d, n, param_stride});
}

template <class T>
void layer_norm_forward(Backend b, const T* x, const T* gain, const T* bias, T* y, T* mean, T* rstd, int64_t n, int d) {
  layer_norm_forward_seeds(b, x, gain, bias, 0, y, mean, rstd, 1, n, d);
}

template <class T>
void layer_norm_backward(Backend b, const T* x, const T* gain, const T* mean, const T* rstd, const T* dy, T* dx,
                         T* dgain, T* dbias, int64_t n, int d) {
  layer_norm_backward_seeds(b, x, gain, mean, rstd, dy, dx, dgain, dbias, 0, 1, n, d);
}

#define DYN_INSTANTIATE_LAYER_NORM(T)                                                                                  \
  template void layer_norm_forward<T>(Backend, const T*, const T*, const T*, T*, T*, T*, int64_t, int);                \
  template void layer_norm_backward<T>(Backend, const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t, \
                                       int);                                                                           \
  template void layer_norm_forward_seeds<T>(Backend, const T*, const T*, const T*, size_t, T*, T*, T*, int, int64_t,   \
                                            int);                                                                      \
  template void layer_norm_backward_seeds<T>(Backend, const T*, const T*, const T*, const T*, const T*, T*, T*, T*,    \
                                             size_t, int, int64_t, int);
DYN_INSTANTIATE_LAYER_NORM(float)
DYN_INSTANTIATE_LAYER_NORM(double)

}  // namespace dyn
