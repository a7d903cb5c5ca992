// Adam over a whole parameter blob: the global gradient norm (kernels/reduce) and the clipped update
// (nn/adam.h) in one pass, with no host round trip.
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/collective.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "kernels/reduce.h"
#include "nn/adam.h"

namespace dyn {

namespace {

// One parameter's clipped Adam step (a functor, not a lambda: see kernels/mlp.cu); in a seed batch (PerSeed)
// element i is seed i / n's, a division a single blob's loop does without.
template <class T, bool PerSeed>
struct AdamElement {
  T *params, *grads, *m, *v;
  const double* state;  // [3 + S]: t, 1 − β1^t, 1 − β2^t, each seed's clip scale
  int64_t n;            // parameters per seed
  T lr, b1, b2, eps;
  DYN_HD void operator()(int64_t i) const {
    const T clip = T(state[PerSeed ? 3 + i / n : 3]);
    adam_update(params[i], m[i], v[i], grads[i] * clip, lr, b1, b2, eps, T(state[1]), T(state[2]));
  }
};

// Once per step: t ← t + 1 and the bias corrections (seed 0's thread), and each seed's clip scale.
template <class T>
struct AdamStepState {
  double* state;
  const T* norm_sq;  // [S]
  T max_norm;
  double beta1, beta2;
  DYN_HD void operator()(int64_t s) const {
    using std::sqrt;
    if (s == 0) {
      state[0] += 1.0;
      state[1] = 1.0 - pow(beta1, state[0]);
      state[2] = 1.0 - pow(beta2, state[0]);
    }
    // global-norm clipping as torch.nn.utils.clip_grad_norm_: scale = max_norm / (norm + 1e-6) when below 1
    const T norm = sqrt(norm_sq[s]);
    state[3 + s] = (max_norm > T(0) && norm > max_norm) ? double(max_norm / (norm + T(1e-6))) : 1.0;
  }
};

}  // namespace

template <class T>
Adam<T>::Adam(Backend b, size_t n, AdamConfig cfg, int seeds)
    : b_(b),
      n_(n),
      seeds_(seeds),
      cfg_(cfg),
      m_(b, n * size_t(seeds)),
      v_(b, n * size_t(seeds)),
      norm_sq_(b, size_t(seeds)),
      state_(b, 3 + size_t(seeds)) {
  if (seeds < 1) throw std::invalid_argument("Adam: seeds must be >= 1, got " + std::to_string(seeds));
  m_.zero();
  v_.zero();
  norm_sq_.zero();
  state_.zero();
}

template <class T>
void Adam<T>::step(T* params, T* grads) {
  DYN_NVTX_RANGE("adam_step");
  ++t_;
  const int64_t total = int64_t(n_) * seeds_;
  average_over_ranks(b_, grads, total);  // data parallel: every rank steps with the mean gradient
  segment_sums_of_squares(b_, grads, n_, seeds_, norm_sq_.data());
  const T lr = T(cfg_.lr), b1 = T(cfg_.beta1), b2 = T(cfg_.beta2), eps = T(cfg_.eps);
  parallel_for(b_, seeds_,
               AdamStepState<T>{state_.data(), norm_sq_.data(), T(cfg_.max_grad_norm), cfg_.beta1, cfg_.beta2});
  const int64_t n = int64_t(n_ > 0 ? n_ : 1);
  if (seeds_ == 1)
    parallel_for(b_, total,
                 AdamElement<T, false>{params, grads, m_.data(), v_.data(), state_.data(), n, lr, b1, b2, eps});
  else
    parallel_for(b_, total,
                 AdamElement<T, true>{params, grads, m_.data(), v_.data(), state_.data(), n, lr, b1, b2, eps});
}

template <class T>
double Adam<T>::last_grad_norm(int seed) const {
  if (seed < 0 || seed >= seeds_)
    throw std::out_of_range("Adam::last_grad_norm: seed " + std::to_string(seed) + " outside [0, " +
                            std::to_string(seeds_) + ")");
  return last_grad_norms()[size_t(seed)];
}

template <class T>
std::vector<double> Adam<T>::last_grad_norms() const {
  std::vector<double> norms;
  for (const T sq : norm_sq_.to_host()) norms.push_back(std::sqrt(double(sq)));
  return norms;
}

template class Adam<float>;
template class Adam<double>;

}  // namespace dyn
