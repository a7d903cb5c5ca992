// Finite-difference gradient checks in double: central differences against an analytic gradient.
#pragma once

#include <cmath>
#include <functional>
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
