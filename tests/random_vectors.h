// Test vectors: Gaussian from Philox (deterministic per seed), or uniform from a caller's std::mt19937 stream.
#pragma once

#include <random>
#include <vector>

#include "kernels/philox.h"

template <class T = double>
std::vector<T> randn(size_t n, uint32_t seed, double scale = 1.0) {
  std::vector<T> v(n);
  dyn::Philox rng(seed, 0, 0, 0);
  for (T& x : v) x = T(scale * rng.normal());
  return v;
}

// n values uniform in [−scale, scale] drawn from rng (the caller's stream advances).
inline std::vector<double> uniform_vector(int n, double scale, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(-scale, scale);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = u(rng);
  return v;
}
