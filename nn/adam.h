// Adam (Kingma & Ba 2015) with global gradient-norm clipping over a whole parameter blob, or over a seed batch's
// [S, P] blob with one clip norm per seed.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

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

// Optimiser state for one blob of n parameters, or for `seeds` blobs of n side by side ([S, n]: a seed batch's
// parameters, stepped together, each clipped by its own norm; seed s's figures are those of an Adam of its own —
// bit for bit on the CPU).
template <class T>
class Adam {
 public:
  Adam(Backend b, size_t n, AdamConfig cfg, int seeds = 1);
  // Clips each seed's grads to its global norm cfg.max_grad_norm (the norms stay on the backend) and takes one step.
  // In a data-parallel run the grads are first replaced by their mean over the ranks (kernels/collective.h), so
  // every rank takes the same step.
  void step(T* params, T* grads);
  // Global L2 norm of seed `seed`'s gradients in the last step, before clipping (reads one scalar back).
  double last_grad_norm(int seed = 0) const;
  std::vector<double> last_grad_norms() const;  // [seeds] every seed's, in one read
  int seeds() const { return seeds_; }
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
  // Seed `run`'s part of a seed batch's state under the names and shapes an Adam of its own has: its moments [n]
  // and the state [4] = the shared step and bias corrections, then its clip scale.
  void visit_state(StateVisitor& v, int run) {
    if (seeds_ == 1) return visit_state(v);
    v.array("m", dtype_of<T>(), {int64_t(n_)}, m_.data() + size_t(run) * n_, b_);
    v.array("v", dtype_of<T>(), {int64_t(n_)}, v_.data() + size_t(run) * n_, b_);
    std::vector<double> all = state_.to_host();
    std::vector<double> mine = {all[0], all[1], all[2], all[3 + run]};
    v.array("state", DType::f64, {4}, mine.data(), Backend::cpu);
    for (int k = 0; k < 3; ++k) all[k] = mine[k];  // a load: the run's values back into the batch
    all[3 + run] = mine[3];
    state_.from_host(all);
    v.value("t", t_);
    v.value("lr", cfg_.lr);
  }

 private:
  Backend b_;
  size_t n_;  // parameters per seed
  int seeds_;
  AdamConfig cfg_;
  Buffer<T> m_, v_;       // [S, n]
  Buffer<T> norm_sq_;     // [S]
  Buffer<double> state_;  // [3 + S]: step t, 1 − β1^t, 1 − β2^t, each seed's clip scale — on the backend, so a
                          // graph replay advances it
  int64_t t_ = 0;         // host mirror of t
};

}  // namespace dyn
