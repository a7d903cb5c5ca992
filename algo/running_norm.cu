// Running normaliser: one parallel_for item per feature for the merge, one per element for the transform.
#include <cmath>

#include "algo/running_norm.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

RunningNorm::RunningNorm(Backend b, int dim) : b_(b), dim_(dim), stats_(b, size_t(2 * dim + 1)) {
  std::vector<double> init(size_t(2 * dim + 1), 0.0);
  for (int k = 0; k < dim; ++k) init[dim + k] = 1.0;
  init[2 * dim] = 1e-4;  // a tiny prior count, as baselines' RunningMeanStd
  stats_.from_host(init);
}

void RunningNorm::update(const float* x, int64_t rows) {
  double* s = stats_.data();
  const int d = dim_;
  // every feature reads the shared count before any writes it: compute the new count once, last
  parallel_for(b_, d, [=] DYN_LAMBDA(int64_t k) {
    double mean = 0, m2 = 0;
    for (int64_t r = 0; r < rows; ++r) {  // Welford within the batch
      const double v = x[r * d + k], delta = v - mean;
      mean += delta / double(r + 1);
      m2 += delta * (v - mean);
    }
    const double var = rows > 0 ? m2 / double(rows) : 0.0;
    const double n_a = s[2 * d], n_b = double(rows), n = n_a + n_b;
    const double delta = mean - s[k];
    s[k] += delta * n_b / n;
    s[d + k] = (s[d + k] * n_a + var * n_b + delta * delta * n_a * n_b / n) / n;
  });
  parallel_for(b_, 1, [=] DYN_LAMBDA(int64_t) { s[2 * d] += double(rows); });
}

void RunningNorm::normalize(const float* x, float* y, int64_t rows, float clip) const {
  const double* s = stats_.data();
  const int d = dim_;
  parallel_for(b_, rows * d, [=] DYN_LAMBDA(int64_t i) {
    const int k = int(i % d);
    const float v = float((x[i] - s[k]) / sqrt(s[d + k] + 1e-8));
    y[i] = v < -clip ? -clip : v > clip ? clip : v;
  });
}

void RunningNorm::scale(const float* x, float* y, int64_t rows, float clip) const {
  const double* s = stats_.data();
  const int d = dim_;
  parallel_for(b_, rows * d, [=] DYN_LAMBDA(int64_t i) {
    const int k = int(i % d);
    const float v = float(x[i] / sqrt(s[d + k] + 1e-8));
    y[i] = v < -clip ? -clip : v > clip ? clip : v;
  });
}

}  // namespace dyn
