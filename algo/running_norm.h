// Running mean and variance per feature over a stream of batches (Chan et al.'s parallel merge), kept on the
// backend in double; used for the policy's input normalisation and the reward scale (SPEC §3–4). A batch's moments
// come from a parallel reduction (kernels/moments.h, about the running mean); only the merge is per feature.
#pragma once

#include <cmath>
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

// The normalised values' clip, ±10 (as the baselines' VecNormalize clips observations and rewards).
constexpr float kNormClip = 10.0f;

// Feature k of a value normalised by statistics s [2·dim + 1] (mean, var, count): clip((x − mean) / sqrt(var + 1e-8),
// ±clip).
DYN_HD float normalized_value(float x, const double* s, int dim, int k, float clip) {
  const float v = float((x - s[k]) / sqrt(s[dim + k] + 1e-8));
  return v < -clip ? -clip : v > clip ? clip : v;
}

// The same scaled only: clip(x / sqrt(var + 1e-8), ±clip) (rewards by the std of the discounted return).
DYN_HD float scaled_value(float x, const double* s, int dim, int k, float clip) {
  const float v = float(x / sqrt(s[dim + k] + 1e-8));
  return v < -clip ? -clip : v > clip ? clip : v;
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
  void normalize(const float* x, float* y, int64_t rows, float clip = kNormClip) const;
  // y = clip(x / sqrt(var + 1e-8), ±clip): scaling only (rewards by the std of the discounted return).
  void scale(const float* x, float* y, int64_t rows, float clip = kNormClip) const;
  int dim() const { return dim_; }
  double* stats_data() { return stats_.data(); }  // [2·dim + 1] in backend memory

 private:
  Backend b_ = Backend::cpu;
  int dim_ = 0;
  Buffer<double> stats_;    // [2 · dim + 1]: mean, var, count
  Buffer<double> partial_;  // [chunks, dim, 2]: a batch's shifted sums per chunk of rows
};

// A seed batch's normalisers, one RunningNorm per run over rows [S·n, dim]: run r's rows [r·n, (r+1)·n) merge into
// and are normalised with its own statistics (a run's figures are those of the run alone, bit for bit on the CPU).
// The update (moments, merge, count) and the transforms of every run's rows are one launch each, reading each run's
// statistics through a table of their addresses.
class RunNorms {
 public:
  RunNorms() = default;
  RunNorms(Backend b, int dim, int runs);
  // n rows per run (one run: RunningNorm::update, data parallel too)
  void update(const float* x, int64_t n);
  void normalize(const float* x, float* y, int64_t n) const { normalize(x, y, n, 0, int(norms_.size())); }
  // rows [R·n, dim] of runs [run0, run0 + R) (y may alias x)
  void normalize(const float* x, float* y, int64_t n, int run0, int R) const;
  // rows [S·n, dim] scaled by each run's own statistics (RunningNorm::scale; y may alias x)
  void scale(const float* x, float* y, int64_t n) const;
  RunningNorm& operator[](int run) { return norms_[size_t(run)]; }
  const RunningNorm& operator[](int run) const { return norms_[size_t(run)]; }

 private:
  int dim() const { return norms_.empty() ? 0 : norms_[0].dim(); }
  Backend b_ = Backend::cpu;
  std::vector<RunningNorm> norms_;  // [S]
  Buffer<double*> stats_;           // [S] each run's statistics (backend memory; they stay where they were made)
  Buffer<double> partial_;          // [S, chunks, dim, 2] a batch's shifted sums per run and chunk (S > 1)
};

}  // namespace dyn
