// Running mean and variance per feature over a stream of batches (Chan et al.'s parallel merge), kept on the
// backend in double; used for the policy's input normalisation and the reward scale (SPEC §3–4).
#pragma once

#include <cstdint>

#include "kernels/buffer.h"

namespace dyn {

class RunningNorm {
 public:
  RunningNorm() = default;
  RunningNorm(Backend b, int dim);
  // Merges the statistics of x [rows, dim].
  void update(const float* x, int64_t rows);
  // y = clip((x − mean) / sqrt(var + 1e-8), ±clip) for x [rows, dim]; y may alias x.
  void normalize(const float* x, float* y, int64_t rows, float clip = 10.0f) const;
  // y = clip(x / sqrt(var + 1e-8), ±clip): scaling only (rewards by the std of the discounted return).
  void scale(const float* x, float* y, int64_t rows, float clip = 10.0f) const;

 private:
  Backend b_ = Backend::cpu;
  int dim_ = 0;
  Buffer<double> stats_;  // [2 · dim + 1]: mean, var, count
};

}  // namespace dyn
