// Finite-difference gradient checks in double: central differences against an analytic gradient.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

// ‖analytic − numeric‖₂ / max(‖analytic‖₂, ‖numeric‖₂, 1e-12) over all coordinates of x. `loss` is evaluated at
// x ± eps·e_i; x is restored.
inline double gradcheck_rel_error(std::vector<double>& x, const std::vector<double>& analytic,
                                  const std::function<double()>& loss, double eps = 1e-6) {
  double diff2 = 0, a2 = 0, n2 = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + eps;
    const double up = loss();
    x[i] = keep - eps;
    const double down = loss();
    x[i] = keep;
    const double num = (up - down) / (2 * eps);
    diff2 += (num - analytic[i]) * (num - analytic[i]);
    a2 += analytic[i] * analytic[i];
    n2 += num * num;
  }
  const double scale = std::sqrt(std::fmax(std::fmax(a2, n2), 1e-24));
  return std::sqrt(diff2) / scale;
}

// gradcheck_rel_error over `count` distinct coordinates (a repeated one would undo its own perturbation) of the
// block [offset, offset + size) of a parameter blob `values`, picked by a fixed shuffle: loss() reads the blob, which
// is perturbed in place and restored afterwards; grad holds the analytic gradient of the whole blob.
inline double gradcheck_block(double* values, const std::vector<double>& grad, size_t offset, size_t size, int count,
                              const std::function<double()>& loss, double eps = 1e-6) {
  std::vector<size_t> coords(size);
  std::iota(coords.begin(), coords.end(), offset);
  std::shuffle(coords.begin(), coords.end(), std::mt19937(5));
  coords.resize(std::min(coords.size(), size_t(count)));
  std::vector<double> x(coords.size()), analytic(coords.size());
  for (size_t i = 0; i < coords.size(); ++i) {
    x[i] = values[coords[i]];
    analytic[i] = grad[coords[i]];
  }
  const double e = gradcheck_rel_error(
      x, analytic,
      [&] {
        for (size_t i = 0; i < coords.size(); ++i) values[coords[i]] = x[i];
        return loss();
      },
      eps);
  for (size_t i = 0; i < coords.size(); ++i) values[coords[i]] = x[i];  // restored
  return e;
}

// Relative L2 distance between two vectors (float path vs double path).
template <class A, class B>
double rel_l2(const std::vector<A>& a, const std::vector<B>& b) {
  double d = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    s += double(b[i]) * double(b[i]);
  }
  return std::sqrt(d / std::fmax(s, 1e-300));
}

constexpr double kGradTol = 1e-6;   // double-precision gradient checks
constexpr double kFloatTol = 1e-4;  // float path vs double path, relative L2
