// Sample moments and statistical bounds for tests of random draws.
#pragma once

#include <cmath>
#include <vector>

struct Moments {
  double mean = 0, var = 0, m4 = 0;  // mean, variance, 4th central moment
  size_t n = 0;
};

template <class T>
Moments moments(const std::vector<T>& x) {
  Moments m;
  m.n = x.size();
  for (T v : x) m.mean += double(v);
  m.mean /= double(m.n);
  for (T v : x) {
    const double d = double(v) - m.mean;
    m.var += d * d;
    m.m4 += d * d * d * d;
  }
  m.var /= double(m.n - 1);
  m.m4 /= double(m.n);
  return m;
}

// Standard error of the sample mean and of the sample variance from the population moments.
inline double se_mean(double var, size_t n) { return std::sqrt(var / double(n)); }
inline double se_var(double var, double m4, size_t n) { return std::sqrt((m4 - var * var) / double(n)); }

// 5 standard errors: a correct implementation fails about once in 1.7 million runs.
constexpr double kSigmas = 5.0;
