// Batched InfoNCE rows (nn/info_nce.h): one parallel_for item per row.
#include "kernels/parallel_for.cuh"
#include "nn/info_nce.h"

namespace dyn {

namespace {

template <class T>
struct InfoNceRows {
  const T* logits;
  const uint8_t* valid;
  const T* w;
  T* loss;
  uint8_t* hit;
  T* dlogits;
  int k;
  DYN_HD void operator()(int64_t i) const {
    const T* l = logits + i * k;
    const uint8_t* v = valid ? valid + i * k : nullptr;
    const T wi = w ? w[i] : T(1);
    T* dl = dlogits ? dlogits + i * k : nullptr;
    if (wi == T(0)) {
      if (loss) loss[i] = T(0);
      if (hit) hit[i] = 0;
      if (dl)
        for (int j = 0; j < k; ++j) dl[j] = T(0);
      return;
    }
    const T value = info_nce_row(l, v, k, wi, dl);
    if (loss) loss[i] = wi * value;
    if (hit) hit[i] = info_nce_hit(l, v, k) ? 1 : 0;
  }
};

}  // namespace

template <class T>
void info_nce_batch(Backend b, const T* logits, const uint8_t* valid, const T* w, T* loss, uint8_t* hit, T* dlogits,
                    int64_t n, int k) {
  parallel_for(b, n, InfoNceRows<T>{logits, valid, w, loss, hit, dlogits, k});
}

template void info_nce_batch<float>(Backend, const float*, const uint8_t*, const float*, float*, uint8_t*, float*,
                                    int64_t, int);
template void info_nce_batch<double>(Backend, const double*, const uint8_t*, const double*, double*, uint8_t*, double*,
                                     int64_t, int);

}  // namespace dyn
