// Running mean and variance per feature over a stream of batches (Chan et al.'s parallel merge), kept on the
// backend in double; used for the policy's input normalisation and the reward scale (SPEC §3–4). A batch's moments
// come from a parallel reduction (kernels/moments.h, about the running mean); only the merge is per feature.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/buffer.h"
#include "kernels/hd.h"
#include "kernels/state_io.h"

namespace dyn {

// Merges a batch of n_b rows into (mean, var, count n_a) of one feature, given the batch's sums about the running
// mean: s1 = Σ (x − mean), s2 = Σ (x − mean)². Chan et al.: the batch mean is mean + s1/n_b, its variance
// s2/n_b − (s1/n_b)², and δ = s1/n_b.
DYN_HD void merge_batch_moments(double& mean, double& var, double n_a, double n_b, double s1, double s2) {
  const double n = n_a + n_b, delta = s1 / n_b;
  const double var_b = s2 / n_b - delta * delta;
  mean += delta * n_b / n;
  var = (var * n_a + (var_b > 0 ? var_b : 0.0) * n_b + delta * delta * n_a * n_b / n) / n;
}

class RunningNorm {
 public:
  RunningNorm() = default;
  RunningNorm(Backend b, int dim);
  // Merges the statistics of x [rows, dim] (data parallel: of every rank's x, each with the same rows).
  void update(const float* x, int64_t rows);
  // The statistics [2·dim + 1]: mean, var, count (one read; for tests and checkpoints).
  std::vector<double> stats() const { return stats_.to_host(); }
  void visit_state(StateVisitor& v) { v.buffer("stats", stats_); }
  // y = clip((x − mean) / sqrt(var + 1e-8), ±clip) for x [rows, dim]; y may alias x.
  void normalize(const float* x, float* y, int64_t rows, float clip = 10.0f) const;
  // y = clip(x / sqrt(var + 1e-8), ±clip): scaling only (rewards by the std of the discounted return).
  void scale(const float* x, float* y, int64_t rows, float clip = 10.0f) const;

 private:
  Backend b_ = Backend::cpu;
  int dim_ = 0;
  Buffer<double> stats_;    // [2 · dim + 1]: mean, var, count
  Buffer<double> partial_;  // [chunks, dim, 2]: a batch's shifted sums per chunk of rows
};

}  // namespace dyn
