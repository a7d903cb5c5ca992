// Adam over a whole parameter blob: the global gradient norm (kernels/reduce) and the clipped update
// (nn/adam.h) in one pass, with no host round trip.
#include <cmath>

#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "kernels/reduce.h"
#include "nn/adam.h"

namespace dyn {

template <class T>
Adam<T>::Adam(Backend b, size_t n, AdamConfig cfg)
    : b_(b), n_(n), cfg_(cfg), m_(b, n), v_(b, n), norm_sq_(b, 1), bias_(b, 3) {
  m_.zero();
  v_.zero();
  norm_sq_.zero();
  bias_.zero();
}

template <class T>
void Adam<T>::step(T* params, T* grads) {
  DYN_NVTX_RANGE("adam_step");
  ++t_;
  sum_of_squares(b_, grads, n_, norm_sq_.data());
  const T lr = T(cfg_.lr), b1 = T(cfg_.beta1), b2 = T(cfg_.beta2), eps = T(cfg_.eps);
  const T max_norm = T(cfg_.max_grad_norm);
  double* bias = bias_.data();
  const double beta1 = cfg_.beta1, beta2 = cfg_.beta2;
  parallel_for(b_, 1, [=] DYN_LAMBDA(int64_t) {  // t ← t + 1 and the bias corrections, once per step
    bias[0] += 1.0;
    bias[1] = 1.0 - pow(beta1, bias[0]);
    bias[2] = 1.0 - pow(beta2, bias[0]);
  });
  const T* norm_sq = norm_sq_.data();
  T* m = m_.data();
  T* v = v_.data();
  parallel_for(b_, int64_t(n_), [=] DYN_LAMBDA(int64_t i) {
    using std::sqrt;
    // global-norm clipping as torch.nn.utils.clip_grad_norm_: scale = max_norm / (norm + 1e-6) when below 1
    const T norm = sqrt(norm_sq[0]);
    const T scale = (max_norm > T(0) && norm > max_norm) ? max_norm / (norm + T(1e-6)) : T(1);
    adam_update(params[i], m[i], v[i], grads[i] * scale, lr, b1, b2, eps, T(bias[1]), T(bias[2]));
  });
}

template <class T>
double Adam<T>::last_grad_norm() const {
  return std::sqrt(double(norm_sq_.to_host()[0]));
}

template class Adam<float>;
template class Adam<double>;

}  // namespace dyn
