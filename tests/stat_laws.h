// Exact laws for statistical tests, computed in double independently of the code under test: the Poisson pmf, the
// law of the DLCMDP session lengths under SPEC §1's rejection rule (test_session, test_gridworld), and a χ²
// goodness-of-fit statistic with its upper tail probability.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

// P(X = k) for X ~ Poisson(lambda).
inline double poisson_pmf(int k, double lambda) {
  return std::exp(-lambda + k * std::log(lambda) - std::lgamma(k + 1.0));
}

// The law of one episode's session lengths under the poisson model (SPEC §1, sim/session.h): l_0..l_{K-2} i.i.d.
// Poisson(H/K) (λ rounded to float, as the sampler takes it), all drawn again if any is 0 or their sum is ≥ H,
// the last session the remainder H − Σ; after `max_attempts` rejected draws the fixed lengths floor((i+1)H/K) −
// floor(iH/K) instead.
struct SessionLengthLaw {
  double lambda = 0;
  double accept = 0;          // P(one draw of the K−1 lengths is accepted)
  double fallback = 0;        // P(all max_attempts draws rejected) = (1 − accept)^max_attempts
  std::vector<double> first;  // [H + 1] P(l_i = l) for i < K−1 (exchangeable; with the fallback, the mean over i)
  std::vector<double> last;   // [H + 1] P(l_{K−1} = l)
  double first_mean = 0;      // E[l_i], i < K−1
  double sum_mean = 0, sum_var = 0;  // mean and variance of S = l_0 + … + l_{K−2} (one episode's K−1 draws)
};

inline SessionLengthLaw session_length_law(int horizon, int sessions, int max_attempts) {
  SessionLengthLaw law;
  const int h = horizon, draws = sessions - 1;
  law.lambda = double(float(h) / float(sessions));
  // q[l]: P(Poisson = l) restricted to 1 ≤ l ≤ H−1 (an accepted length is in that range)
  std::vector<double> q(size_t(h) + 1, 0.0);
  for (int l = 1; l < h; ++l) q[l] = poisson_pmf(l, law.lambda);
  // convolve(a): the law of a sum (a[s], s ≤ H−1) plus one more length ≥ 1, cut at H−1
  auto convolve = [&](const std::vector<double>& a) {
    std::vector<double> out(size_t(h) + 1, 0.0);
    for (int s = 0; s < h; ++s)
      for (int l = 1; l + s < h; ++l) out[s + l] += a[s] * q[l];
    return out;
  };
  std::vector<double> others(size_t(h) + 1, 0.0);  // the sum of K−2 lengths
  others[0] = 1.0;
  for (int j = 0; j < draws - 1; ++j) others = convolve(others);
  const std::vector<double> all = draws > 0 ? convolve(others) : others;  // the sum S of the K−1 lengths
  for (int s = 0; s < h; ++s) law.accept += all[s];
  law.fallback = std::pow(1.0 - law.accept, double(max_attempts));
  const double w = (1.0 - law.fallback) / law.accept;  // accepted draws, normalised
  law.first.assign(size_t(h) + 1, 0.0);
  law.last.assign(size_t(h) + 1, 0.0);
  if (draws > 0) {
    std::vector<double> others_cdf(size_t(h) + 1, 0.0);  // P(sum of K−2 lengths ≤ s)
    for (int s = 0; s < h; ++s) others_cdf[s] = (s > 0 ? others_cdf[s - 1] : 0.0) + others[s];
    for (int l = 1; l < h; ++l) law.first[l] = w * q[l] * others_cdf[h - 1 - l];
  }
  for (int s = 0; s < h; ++s) law.last[h - s] += w * all[s];
  for (int s = 0; s < h; ++s) {
    law.sum_mean += w * all[s] * s;
    law.sum_var += w * all[s] * double(s) * s;
  }
  // the fixed fallback: l_i = floor((i+1)H/K) − floor(iH/K)
  double fixed_sum = 0;
  for (int i = 0; i < sessions; ++i) {
    const int l = int((int64_t(i + 1) * h) / sessions - (int64_t(i) * h) / sessions);
    if (i < draws) {
      law.first[l] += law.fallback / draws;  // averaged over i < K−1
      fixed_sum += l;
    } else {
      law.last[l] += law.fallback;
    }
  }
  law.sum_mean += law.fallback * fixed_sum;
  law.sum_var += law.fallback * fixed_sum * fixed_sum;
  law.sum_var -= law.sum_mean * law.sum_mean;
  for (int l = 0; l <= h; ++l) law.first_mean += law.first[l] * l;
  return law;
}

// Q(a, x) = Γ(a, x) / Γ(a), the regularised upper incomplete gamma function: the series for x < a + 1, Lentz's
// continued fraction above (Numerical Recipes §6.2), to double precision.
inline double gamma_q(double a, double x) {
  if (x <= 0) return 1.0;
  const double log_prefix = -x + a * std::log(x) - std::lgamma(a);
  if (x < a + 1) {
    double term = 1.0 / a, sum = term;
    for (int n = 1; n < 10000 && std::fabs(term) > 1e-17 * std::fabs(sum); ++n) {
      term *= x / (a + n);
      sum += term;
    }
    return 1.0 - sum * std::exp(log_prefix);
  }
  constexpr double kTiny = 1e-300;
  double b = x + 1 - a, c = 1 / kTiny, d = 1 / b, f = d;
  for (int i = 1; i < 10000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double delta = d * c;
    f *= delta;
    if (std::fabs(delta - 1) < 1e-16) break;
  }
  return std::exp(log_prefix) * f;
}

// P(χ²_df > x).
inline double chi2_upper_tail(double x, int df) { return gamma_q(0.5 * df, 0.5 * x); }

struct Chi2Fit {
  double stat = 0;  // Σ (observed − expected)² / expected over the pooled bins
  int df = 0;       // bins − 1 (no fitted parameters)
  int bins = 0;
  double p_value = 1;  // P(χ²_df > stat)
};

// Pearson's χ² of counts[k] (k = 0..M−1, n draws in all; counts[M−1] holds every draw ≥ M−1) against the law
// P(X = k) = p[k] (p[M−1] unused: the last bin's probability is 1 − Σ_{k<M−1} p[k]): adjacent values are pooled left to
// right until each bin expects at least `min_expected` draws, and what is left at the right joins the last bin — so
// each tail of a unimodal law is one bin.
inline Chi2Fit chi2_fit(const std::vector<size_t>& counts, const std::vector<double>& p, size_t n,
                        double min_expected = 5.0) {
  std::vector<double> expected, observed;
  double e = 0, o = 0, mass = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    const double pk = k + 1 < counts.size() ? p[k] : 1.0 - mass;  // the last value holds the upper tail
    mass += pk;
    e += pk * double(n);
    o += double(counts[k]);
    if (e >= min_expected && k + 1 < counts.size()) {
      expected.push_back(e);
      observed.push_back(o);
      e = o = 0;
    }
  }
  if (!expected.empty() && e < min_expected) {  // the right tail joins the last bin
    expected.back() += e;
    observed.back() += o;
  } else {
    expected.push_back(e);
    observed.push_back(o);
  }
  Chi2Fit fit;
  for (size_t b = 0; b < expected.size(); ++b)
    fit.stat += (observed[b] - expected[b]) * (observed[b] - expected[b]) / expected[b];
  fit.bins = int(expected.size());
  fit.df = fit.bins - 1;
  fit.p_value = chi2_upper_tail(fit.stat, fit.df);
  return fit;
}
