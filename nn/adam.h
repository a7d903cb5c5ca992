// Adam (Kingma & Ba 2015) with global gradient-norm clipping over a whole parameter blob.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "kernels/hd.h"
#include "kernels/reduce.h"
#include "kernels/state_io.h"

namespace dyn {

struct AdamConfig {
  float lr = 3e-4f;
  float beta1 = 0.9f, beta2 = 0.999f;
  float eps = 1e-8f;
  float max_grad_norm = 0.5f;  // <= 0: no clipping
};

// One element: m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²; p ← p − lr · m̂ / (√v̂ + eps),
// with m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t) folded into bias1 = 1 − β1^t, bias2 = 1 − β2^t.
template <class T>
DYN_HD void adam_update(T& p, T& m, T& v, T g, T lr, T beta1, T beta2, T eps, T bias1, T bias2) {
  using std::sqrt;
  m = beta1 * m + (T(1) - beta1) * g;
  v = beta2 * v + (T(1) - beta2) * g * g;
  p -= lr * (m / bias1) / (sqrt(v / bias2) + eps);
}

// Optimiser state for one blob of n parameters.
template <class T>
class Adam {
 public:
  Adam(Backend b, size_t n, AdamConfig cfg);
  // Clips grads to the global norm cfg.max_grad_norm (the norm stays on the backend) and takes one step. In a
  // data-parallel run the grads are first replaced by their mean over the ranks (kernels/collective.h), so every
  // rank takes the same step.
  void step(T* params, T* grads);
  // Global L2 norm of the last step's gradients, before clipping (reads one scalar back).
  double last_grad_norm() const;
  int64_t steps() const { return t_; }
  // A new learning rate from the next step on (schedules of eager, uncaptured steps: ContraBAR's CPC halving).
  void set_lr(float lr) { cfg_.lr = lr; }
  float lr() const { return cfg_.lr; }
  // The moments, the step (device and host) and the learning rate, for checkpoints.
  void visit_state(StateVisitor& v) {
    v.buffer("m", m_);
    v.buffer("v", v_);
    v.buffer("state", state_);
    v.value("t", t_);
    v.value("lr", cfg_.lr);
  }

 private:
  Backend b_;
  size_t n_;
  AdamConfig cfg_;
  Buffer<T> m_, v_;
  Buffer<T> norm_sq_;     // [1]
  Buffer<double> state_;  // [4]: step t, 1 − β1^t, 1 − β2^t, clip scale — on the backend, so a graph replay
                          // advances it
  int64_t t_ = 0;         // host mirror of t
};

}  // namespace dyn
