// Distributions and KL: gradient checks in double for categorical and Gaussian log-prob / entropy, the
// reparameterised sample, and the Gaussian KL to both sides and to N(0, I); sampling frequencies and modes.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/buffer.h"
#include "nn/distributions.h"
#include "nn/distributions_batch.h"
#include "tests/gradcheck.h"
#include "tests/random_vectors.h"
#include "tests/stats.h"

using namespace dyn;

namespace {}  // namespace

TEST(Categorical, LogProbAndEntropyGradients) {
  std::vector<double> z = randn(5, 1, 2.0);
  for (int action = 0; action < 5; ++action) {
    std::vector<double> dz(5, 0.0);
    categorical_log_prob_grad(z.data(), 5, action, 1.0, dz.data());
    EXPECT_LT(gradcheck_rel_error(z, dz, [&] { return categorical_log_prob(z.data(), 5, action); }), kGradTol);
  }
  std::vector<double> dz(5, 0.0);
  categorical_entropy_grad(z.data(), 5, 1.0, dz.data());
  EXPECT_LT(gradcheck_rel_error(z, dz, [&] { return categorical_entropy(z.data(), 5); }), kGradTol);
}

TEST(Categorical, ValuesModeAndSampling) {
  const double z[3] = {std::log(0.2), std::log(0.3), std::log(0.5)};
  EXPECT_NEAR(categorical_log_prob(z, 3, 1), std::log(0.3), 1e-12);
  EXPECT_NEAR(categorical_entropy(z, 3), -(0.2 * std::log(0.2) + 0.3 * std::log(0.3) + 0.5 * std::log(0.5)), 1e-12);
  EXPECT_EQ(categorical_mode(z, 3), 2);
  const float zf[5] = {0, 0, 0, 0, 0};
  EXPECT_NEAR(categorical_entropy(zf, 5), std::log(5.0), 1e-6);
  std::vector<size_t> count(3, 0);
  const size_t n = 300000;
  Philox rng(2, 0, 0, 0);
  for (size_t i = 0; i < n; ++i) ++count[categorical_sample(z, 3, rng)];
  const double p[3] = {0.2, 0.3, 0.5};
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(double(count[k]) / n, p[k], kSigmas * std::sqrt(p[k] * (1 - p[k]) / n));
}

TEST(Gaussian, LogProbGradientsToMeanLogStdAndSample) {
  const int d = 4;
  std::vector<double> mu = randn(d, 3), ls = randn(d, 4, 0.5), x = randn(d, 5);
  std::vector<double> dmu(d, 0), dls(d, 0), dx(d, 0);
  gaussian_log_prob_grad(mu.data(), ls.data(), x.data(), d, 1.0, dmu.data(), dls.data(), dx.data());
  auto f = [&] { return gaussian_log_prob(mu.data(), ls.data(), x.data(), d); };
  EXPECT_LT(gradcheck_rel_error(mu, dmu, f), kGradTol);
  EXPECT_LT(gradcheck_rel_error(ls, dls, f), kGradTol);
  EXPECT_LT(gradcheck_rel_error(x, dx, f), kGradTol);
}

TEST(Gaussian, LogProbAndEntropyValues) {
  const double mu[2] = {1.0, -1.0}, ls[2] = {0.0, std::log(2.0)}, x[2] = {2.0, -1.0};
  // N(2; 1, 1) · N(-1; -1, 4)
  const double want = -0.5 - 0.5 * kLog2Pi + (-std::log(2.0) - 0.5 * kLog2Pi);
  EXPECT_NEAR(gaussian_log_prob(mu, ls, x, 2), want, 1e-12);
  EXPECT_NEAR(gaussian_entropy(ls, 2), 0.5 * (1 + kLog2Pi) * 2 + std::log(2.0), 1e-12);
  std::vector<double> l = randn(3, 6), dl(3, 0.0);
  for (int i = 0; i < 3; ++i) dl[i] = 1.0;  // d entropy / d log σ = 1
  EXPECT_LT(gradcheck_rel_error(l, dl, [&] { return gaussian_entropy(l.data(), 3); }), kGradTol);
}

TEST(Gaussian, ReparameterisedSampleGradient) {
  const int d = 3;
  std::vector<double> mu = randn(d, 7), ls = randn(d, 8, 0.3), w = randn(d, 9);
  std::vector<double> eps(d), x(d);
  // loss = w · x(mu, log σ) with the noise held fixed
  auto loss = [&] {
    Philox rng(10, 0, 0, 0);
    gaussian_rsample(mu.data(), ls.data(), d, rng, eps.data(), x.data());
    double l = 0;
    for (int i = 0; i < d; ++i) l += w[i] * x[i];
    return l;
  };
  loss();
  std::vector<double> dmu(d, 0), dls(d, 0);
  gaussian_rsample_grad(ls.data(), eps.data(), w.data(), d, dmu.data(), dls.data());
  EXPECT_LT(gradcheck_rel_error(mu, dmu, loss), kGradTol);
  EXPECT_LT(gradcheck_rel_error(ls, dls, loss), kGradTol);
}

TEST(Gaussian, SampleMoments) {
  const double mu[1] = {1.5}, ls[1] = {std::log(0.5)};
  std::vector<double> xs(200000);
  Philox rng(11, 0, 0, 0);
  double eps[1], x[1];
  for (double& v : xs) {
    gaussian_rsample(mu, ls, 1, rng, eps, x);
    v = x[0];
  }
  const Moments m = moments(xs);
  EXPECT_NEAR(m.mean, 1.5, kSigmas * se_mean(0.25, xs.size()));
  EXPECT_NEAR(m.var, 0.25, kSigmas * se_var(0.25, 3 * 0.0625, xs.size()));
}

TEST(GaussianKl, GradientsToBothSides) {
  const int d = 5;
  std::vector<double> mu1 = randn(d, 12), lv1 = randn(d, 13, 0.5), mu2 = randn(d, 14), lv2 = randn(d, 15, 0.5);
  std::vector<double> dmu1(d, 0), dlv1(d, 0), dmu2(d, 0), dlv2(d, 0);
  gaussian_kl_grad(mu1.data(), lv1.data(), mu2.data(), lv2.data(), d, 1.0, dmu1.data(), dlv1.data(), dmu2.data(),
                   dlv2.data());
  auto f = [&] { return gaussian_kl(mu1.data(), lv1.data(), mu2.data(), lv2.data(), d); };
  EXPECT_LT(gradcheck_rel_error(mu1, dmu1, f), kGradTol);
  EXPECT_LT(gradcheck_rel_error(lv1, dlv1, f), kGradTol);
  EXPECT_LT(gradcheck_rel_error(mu2, dmu2, f), kGradTol);
  EXPECT_LT(gradcheck_rel_error(lv2, dlv2, f), kGradTol);
  EXPECT_GT(f(), 0.0);
  EXPECT_NEAR(gaussian_kl(mu1.data(), lv1.data(), mu1.data(), lv1.data(), d), 0.0, 1e-14);
}

TEST(GaussianKl, ToStandardNormal) {
  const int d = 4;
  std::vector<double> mu = randn(d, 16), lv = randn(d, 17, 0.5);
  const std::vector<double> zero(d, 0.0);
  EXPECT_NEAR(gaussian_kl_std_normal(mu.data(), lv.data(), d),
              gaussian_kl(mu.data(), lv.data(), zero.data(), zero.data(), d), 1e-12);
  std::vector<double> dmu(d, 0), dlv(d, 0);
  gaussian_kl_std_normal_grad(mu.data(), lv.data(), d, 1.0, dmu.data(), dlv.data());
  auto f = [&] { return gaussian_kl_std_normal(mu.data(), lv.data(), d); };
  EXPECT_LT(gradcheck_rel_error(mu, dmu, f), kGradTol);
  EXPECT_LT(gradcheck_rel_error(lv, dlv, f), kGradTol);
}

TEST(GaussianKl, FloatAgreesWithDouble) {
  const int d = 16;
  const std::vector<double> mu1 = randn(d, 18), lv1 = randn(d, 19, 0.5), mu2 = randn(d, 20), lv2 = randn(d, 21, 0.5);
  const std::vector<float> a(mu1.begin(), mu1.end()), b(lv1.begin(), lv1.end()), c(mu2.begin(), mu2.end()),
      e(lv2.begin(), lv2.end());
  const double kd = gaussian_kl(mu1.data(), lv1.data(), mu2.data(), lv2.data(), d);
  const float kf = gaussian_kl(a.data(), b.data(), c.data(), e.data(), d);
  EXPECT_NEAR(kf, kd, kFloatTol * std::fabs(kd));
}

// ---- batched over rows (nn/distributions_batch.h) ----

TEST(Batched, CategoricalMatchesRowsAndGradients) {
  const int n = 64, a = 5;
  std::vector<double> z = randn(size_t(n) * a, 30, 1.5);
  std::vector<int32_t> act(n);
  for (int i = 0; i < n; ++i) act[i] = i % a;
  const std::vector<double> gl = randn(n, 31), ge = randn(n, 32);
  auto zb = Buffer<double>::copy_of(Backend::cpu, z), glb = Buffer<double>::copy_of(Backend::cpu, gl),
       geb = Buffer<double>::copy_of(Backend::cpu, ge);
  auto ab = Buffer<int32_t>::copy_of(Backend::cpu, act);
  Buffer<double> lp(Backend::cpu, n), ent(Backend::cpu, n), dz(Backend::cpu, z.size());
  categorical_log_prob_entropy(Backend::cpu, zb.data(), ab.data(), lp.data(), ent.data(), n, a);
  const auto lph = lp.to_host(), enth = ent.to_host();
  for (int i = 0; i < n; ++i) {
    EXPECT_DOUBLE_EQ(lph[i], categorical_log_prob(z.data() + i * a, a, act[i]));
    EXPECT_DOUBLE_EQ(enth[i], categorical_entropy(z.data() + i * a, a));
  }
  categorical_backward(Backend::cpu, zb.data(), ab.data(), glb.data(), geb.data(), dz.data(), n, a);
  auto loss = [&] {
    double l = 0;
    for (int i = 0; i < n; ++i)
      l += gl[i] * categorical_log_prob(z.data() + i * a, a, act[i]) + ge[i] * categorical_entropy(z.data() + i * a, a);
    return l;
  };
  EXPECT_LT(gradcheck_rel_error(z, dz.to_host(), loss), kGradTol);
}

TEST(Batched, CategoricalActModeAndSampleFrequencies) {
  const int n = 200000, a = 3;
  std::vector<float> z(size_t(n) * a);
  for (int i = 0; i < n; ++i) {
    z[i * a] = std::log(0.2f);
    z[i * a + 1] = std::log(0.3f);
    z[i * a + 2] = std::log(0.5f);
  }
  auto zb = Buffer<float>::copy_of(Backend::cpu, z);
  Buffer<int32_t> act(Backend::cpu, n);
  categorical_act(Backend::cpu, zb.data(), true, 1, 0, act.data(), n, a);
  for (int32_t x : act.to_host()) ASSERT_EQ(x, 2);
  categorical_act(Backend::cpu, zb.data(), false, 1, 0, act.data(), n, a);
  std::vector<size_t> count(a, 0);
  for (int32_t x : act.to_host()) ++count[x];
  const double p[3] = {0.2, 0.3, 0.5};
  for (int k = 0; k < a; ++k) EXPECT_NEAR(double(count[k]) / n, p[k], kSigmas * std::sqrt(p[k] * (1 - p[k]) / n));
}

TEST(Batched, GaussianPolicyLogProbGradientsAndActions) {
  const int n = 16, d = 3;
  std::vector<double> mu = randn(size_t(n) * d, 33), ls = randn(d, 34, 0.4), x = randn(size_t(n) * d, 35);
  const std::vector<double> g = randn(n, 36);
  auto mub = Buffer<double>::copy_of(Backend::cpu, mu), lsb = Buffer<double>::copy_of(Backend::cpu, ls),
       xb = Buffer<double>::copy_of(Backend::cpu, x), gb = Buffer<double>::copy_of(Backend::cpu, g);
  Buffer<double> lp(Backend::cpu, n), dmu(Backend::cpu, mu.size()), dls_rows(Backend::cpu, mu.size());
  gaussian_log_prob_batch(Backend::cpu, mub.data(), lsb.data(), xb.data(), lp.data(), n, d);
  const auto lph = lp.to_host();
  for (int i = 0; i < n; ++i)
    EXPECT_DOUBLE_EQ(lph[i], gaussian_log_prob(mu.data() + i * d, ls.data(), x.data() + i * d, d));
  gaussian_log_prob_backward(Backend::cpu, mub.data(), lsb.data(), xb.data(), gb.data(), dmu.data(), dls_rows.data(), n,
                             d);
  auto loss = [&] {
    double l = 0;
    for (int i = 0; i < n; ++i) l += g[i] * gaussian_log_prob(mu.data() + i * d, ls.data(), x.data() + i * d, d);
    return l;
  };
  EXPECT_LT(gradcheck_rel_error(mu, dmu.to_host(), loss), kGradTol);
  std::vector<double> dls(d, 0.0);  // the shared log-std gets the sum over rows
  const auto rows = dls_rows.to_host();
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < d; ++k) dls[k] += rows[i * d + k];
  EXPECT_LT(gradcheck_rel_error(ls, dls, loss), kGradTol);
  Buffer<double> act(Backend::cpu, mu.size());
  gaussian_act(Backend::cpu, mub.data(), lsb.data(), true, 0, 0, act.data(), n, d);
  EXPECT_EQ(act.to_host(), mu);
  gaussian_act(Backend::cpu, mub.data(), lsb.data(), false, 0, 0, act.data(), n, d);
  EXPECT_NE(act.to_host(), mu);
}

// Sampled actions are N(μ, σ²) per dimension with σ = exp(log_std) (EXPECT_NE above passes noise of any scale):
// 200000 rows of 3 dimensions (σ = 0.3, 1, 2.5), each row with its own mean, standardised z = (x − μ) / σ. Per
// dimension, within kSigmas = 5 standard errors: the mean of z (SE 1/√n = 0.0022), the variance of x against σ²
// (SE σ²√(2/n)), the skewness (SE √(6/n) = 0.0055) and excess kurtosis (SE √(24/n) = 0.011) of z, and the
// correlation of z with the next dimension and with the next row (SE 1/√n: independent draws). Measured z-scores
// all within ±1.95 (largest: the mean of dimension 2); with σ² in place of σ the variances miss by −288 and +1661 SE.
TEST(Batched, GaussianActSampleMoments) {
  const int n = 200000, d = 3;
  const std::vector<double> mu = randn(size_t(n) * d, 42, 2.0), ls = {std::log(0.3), 0.0, std::log(2.5)};
  auto mub = Buffer<double>::copy_of(Backend::cpu, mu), lsb = Buffer<double>::copy_of(Backend::cpu, ls);
  Buffer<double> act(Backend::cpu, mu.size());
  gaussian_act(Backend::cpu, mub.data(), lsb.data(), false, 3, 17, act.data(), n, d);
  const std::vector<double> x = act.to_host();
  std::vector<std::vector<double>> z(d, std::vector<double>(n)), dev(d, std::vector<double>(n));
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < d; ++k) {
      dev[k][i] = x[size_t(i) * d + k] - mu[size_t(i) * d + k];
      z[k][i] = dev[k][i] / std::exp(ls[k]);
    }
  const double se = 1.0 / std::sqrt(double(n));
  auto check = [&](double value, double want, double se_value, const char* what, int k) {
    EXPECT_NEAR(value, want, kSigmas * se_value) << what << ", dimension " << k << ": z " << (value - want) / se_value;
  };
  for (int k = 0; k < d; ++k) {
    const double var = std::exp(2 * ls[k]);
    double sum_x = 0, sum_z = 0, sum_x2 = 0, m3 = 0, m4 = 0;
    for (int i = 0; i < n; ++i) {
      sum_x += dev[k][i];
      sum_z += z[k][i];
    }
    const double mean_z = sum_z / n, mean_x = sum_x / n;
    for (int i = 0; i < n; ++i) {
      const double c = z[k][i] - mean_z, cx = dev[k][i] - mean_x;
      sum_x2 += cx * cx;
      m3 += c * c * c / n;
      m4 += c * c * c * c / n;
    }
    const double var_x = sum_x2 / (n - 1), var_z = var_x / var;
    check(mean_z, 0.0, se, "mean", k);
    check(var_x, var, se_var(var, 3 * var * var, n), "variance", k);
    check(m3 / std::pow(var_z, 1.5), 0.0, std::sqrt(6.0) * se, "skewness", k);
    check(m4 / (var_z * var_z) - 3, 0.0, std::sqrt(24.0) * se, "excess kurtosis", k);
    double across = 0, along = 0;
    for (int i = 0; i < n; ++i) across += z[k][i] * z[(k + 1) % d][i] / n;
    for (int i = 0; i + 1 < n; ++i) along += z[k][i] * z[k][i + 1] / (n - 1);
    check(across, 0.0, se, "correlation with the next dimension", k);
    check(along, 0.0, se, "correlation with the next row", k);
  }
}

TEST(Batched, GaussianKlBothSidesAndStandardNormal) {
  const int n = 12, d = 4;
  std::vector<double> mu1 = randn(size_t(n) * d, 37), lv1 = randn(size_t(n) * d, 38, 0.5);
  std::vector<double> mu2 = randn(size_t(n) * d, 39), lv2 = randn(size_t(n) * d, 40, 0.5);
  const std::vector<double> g = randn(n, 41);
  auto b = [](const std::vector<double>& v) { return Buffer<double>::copy_of(Backend::cpu, v); };
  auto m1 = b(mu1), l1 = b(lv1), m2 = b(mu2), l2 = b(lv2), gb = b(g);
  Buffer<double> kl(Backend::cpu, n), dm1(Backend::cpu, mu1.size()), dl1(Backend::cpu, mu1.size()),
      dm2(Backend::cpu, mu1.size()), dl2(Backend::cpu, mu1.size());
  gaussian_kl_batch(Backend::cpu, m1.data(), l1.data(), m2.data(), l2.data(), kl.data(), n, d);
  const auto klh = kl.to_host();
  for (int i = 0; i < n; ++i)
    EXPECT_DOUBLE_EQ(klh[i],
                     gaussian_kl(mu1.data() + i * d, lv1.data() + i * d, mu2.data() + i * d, lv2.data() + i * d, d));
  gaussian_kl_batch_backward(Backend::cpu, m1.data(), l1.data(), m2.data(), l2.data(), gb.data(), dm1.data(),
                             dl1.data(), dm2.data(), dl2.data(), n, d);
  auto loss = [&] {
    double l = 0;
    for (int i = 0; i < n; ++i)
      l += g[i] * gaussian_kl(mu1.data() + i * d, lv1.data() + i * d, mu2.data() + i * d, lv2.data() + i * d, d);
    return l;
  };
  EXPECT_LT(gradcheck_rel_error(mu1, dm1.to_host(), loss), kGradTol);
  EXPECT_LT(gradcheck_rel_error(lv1, dl1.to_host(), loss), kGradTol);
  EXPECT_LT(gradcheck_rel_error(mu2, dm2.to_host(), loss), kGradTol);
  EXPECT_LT(gradcheck_rel_error(lv2, dl2.to_host(), loss), kGradTol);
  // to N(0, I)
  gaussian_kl_batch(Backend::cpu, m1.data(), l1.data(), static_cast<const double*>(nullptr),
                    static_cast<const double*>(nullptr), kl.data(), n, d);
  for (int i = 0; i < n; ++i)
    EXPECT_DOUBLE_EQ(kl.to_host()[i], gaussian_kl_std_normal(mu1.data() + i * d, lv1.data() + i * d, d));
}
