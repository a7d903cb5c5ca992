// Batched layer normalisation over the DYN_HD rows of nn/layer_norm.h: one item per row, and one per column for the
// gain and bias gradients.
#include "kernels/parallel_for.cuh"
#include "nn/layer_norm.h"

namespace dyn {

namespace {

template <class T>
struct LayerNormRows {
  const T *x, *gain, *bias;
  T *y, *mean, *rstd;
  int d;
  DYN_HD void operator()(int64_t i) const {
    T m, r;
    layer_norm_row(x + i * d, d, gain, bias, y + i * d, m, r);
    if (mean) mean[i] = m;
    if (rstd) rstd[i] = r;
  }
};

template <class T>
struct LayerNormBackRows {
  const T *x, *gain, *mean, *rstd, *dy;
  T* dx;
  int d;
  DYN_HD void operator()(int64_t i) const {
    layer_norm_row_backward(x + i * d, d, gain, mean[i], rstd[i], dy + i * d, dx + i * d);
  }
};

// Column k: Σ_rows dy ⊙ x̂ into dgain[k], Σ_rows dy into dbias[k].
template <class T>
struct LayerNormParamGrads {
  const T *x, *mean, *rstd, *dy;
  T *dgain, *dbias;
  int64_t n;
  int d;
  DYN_HD void operator()(int64_t k) const {
    T sg = T(0), sb = T(0);
    for (int64_t i = 0; i < n; ++i) {
      sg += dy[i * d + k] * (x[i * d + k] - mean[i]) * rstd[i];
      sb += dy[i * d + k];
    }
    if (dgain) dgain[k] += sg;
    if (dbias) dbias[k] += sb;
  }
};

}  // namespace

template <class T>
void layer_norm_forward(Backend b, const T* x, const T* gain, const T* bias, T* y, T* mean, T* rstd, int64_t n, int d) {
  parallel_for(b, n, LayerNormRows<T>{x, gain, bias, y, mean, rstd, d});
}

template <class T>
void layer_norm_backward(Backend b, const T* x, const T* gain, const T* mean, const T* rstd, const T* dy, T* dx,
                         T* dgain, T* dbias, int64_t n, int d) {
  // the parameter sums read dy before dx may overwrite it
  if (dgain || dbias) parallel_for(b, d, LayerNormParamGrads<T>{x, mean, rstd, dy, dgain, dbias, n, d});
  parallel_for(b, n, LayerNormBackRows<T>{x, gain, mean, rstd, dy, dx, d});
}

#define DYN_INSTANTIATE_LAYER_NORM(T)                                                                                  \
  template void layer_norm_forward<T>(Backend, const T*, const T*, const T*, T*, T*, T*, int64_t, int);                \
  template void layer_norm_backward<T>(Backend, const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t, \
                                       int);
DYN_INSTANTIATE_LAYER_NORM(float)
DYN_INSTANTIATE_LAYER_NORM(double)

}  // namespace dyn
