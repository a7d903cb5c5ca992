// Adam over a whole parameter blob: the global gradient norm (kernels/reduce) and the clipped update
// (nn/adam.h) in one pass, with no host round trip.
#include <cmath>

#include "kernels/collective.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "kernels/reduce.h"
#include "nn/adam.h"

namespace dyn {

namespace {

// One parameter's clipped Adam step (a functor, not a lambda: see kernels/mlp.cu).
template <class T>
struct AdamElement {
  T *params, *grads, *m, *v;
  const double* state;  // [4]: t, 1 − β1^t, 1 − β2^t, clip scale
  T lr, b1, b2, eps;
  DYN_HD void operator()(int64_t i) const {
    adam_update(params[i], m[i], v[i], grads[i] * T(state[3]), lr, b1, b2, eps, T(state[1]), T(state[2]));
  }
};

}  // namespace

template <class T>
Adam<T>::Adam(Backend b, size_t n, AdamConfig cfg)
    : b_(b), n_(n), cfg_(cfg), m_(b, n), v_(b, n), norm_sq_(b, 1), state_(b, 4) {
  m_.zero();
  v_.zero();
  norm_sq_.zero();
  state_.zero();
}

template <class T>
void Adam<T>::step(T* params, T* grads) {
  DYN_NVTX_RANGE("adam_step");
  ++t_;
  average_over_ranks(b_, grads, int64_t(n_));  // data parallel: every rank steps with the mean gradient
  sum_of_squares(b_, grads, n_, norm_sq_.data());
  const T lr = T(cfg_.lr), b1 = T(cfg_.beta1), b2 = T(cfg_.beta2), eps = T(cfg_.eps);
  const T max_norm = T(cfg_.max_grad_norm);
  double* state = state_.data();
  const T* norm_sq = norm_sq_.data();
  const double beta1 = cfg_.beta1, beta2 = cfg_.beta2;
  parallel_for(b_, 1, [=] DYN_LAMBDA(int64_t) {  // once per step: t ← t + 1, bias corrections, clip scale
    using std::sqrt;
    state[0] += 1.0;
    state[1] = 1.0 - pow(beta1, state[0]);
    state[2] = 1.0 - pow(beta2, state[0]);
    // global-norm clipping as torch.nn.utils.clip_grad_norm_: scale = max_norm / (norm + 1e-6) when below 1
    const T norm = sqrt(norm_sq[0]);
    state[3] = (max_norm > T(0) && norm > max_norm) ? double(max_norm / (norm + T(1e-6))) : 1.0;
  });
  parallel_for(b_, int64_t(n_), AdamElement<T>{params, grads, m_.data(), v_.data(), state, lr, b1, b2, eps});
}

template <class T>
double Adam<T>::last_grad_norm() const {
  return std::sqrt(double(norm_sq_.to_host()[0]));
}

template class Adam<float>;
template class Adam<double>;

}  // namespace dyn
