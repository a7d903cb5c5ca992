// DYN_EXPECT_WITHIN(name, measured, bound): EXPECT_LE(measured, bound), and one line on stdout,
//   [bound] Suite.Test/name measured 1.2e-07 bound 1e-05 (room 83x)
// which scripts/gpu-check gathers into its report, so a device run shows how much room each bound leaves.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

inline void report_bound(const std::string& name, double measured, double bound) {
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  const double room = measured > 0 ? bound / measured : INFINITY;
  std::printf("[bound] %s.%s/%s measured %.3g bound %.3g (room %.3gx)\n", t ? t->test_suite_name() : "?",
              t ? t->name() : "?", name.c_str(), measured, bound, room);
  std::fflush(stdout);
}

#define DYN_EXPECT_WITHIN(name, measured, bound)                          \
  do {                                                                    \
    const double dyn_measured_ = (measured), dyn_bound_ = (bound);        \
    report_bound((name), dyn_measured_, dyn_bound_);                      \
    EXPECT_LE(dyn_measured_, dyn_bound_) << (name) << " (NaN fails too)"; \
    EXPECT_FALSE(std::isnan(dyn_measured_)) << (name);                    \
  } while (0)

// The largest |a_i − b_i| (infinite where either is not finite), for DYN_EXPECT_WITHIN.
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = std::fabs(double(a[i]) - double(b[i]));
    d = std::isfinite(x) ? std::fmax(d, x) : INFINITY;
  }
  return d;
}
