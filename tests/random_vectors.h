// Gaussian test vectors drawn from Philox (deterministic per seed).
#pragma once

#include <vector>

#include "kernels/philox.h"

template <class T = double>
std::vector<T> randn(size_t n, uint32_t seed, double scale = 1.0) {
  std::vector<T> v(n);
  dyn::Philox rng(seed, 0, 0, 0);
  for (T& x : v) x = T(scale * rng.normal());
  return v;
}
