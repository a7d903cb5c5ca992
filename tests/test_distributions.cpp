// Distributions and KL: gradient checks in double for categorical and Gaussian log-prob / entropy, the
// reparameterised sample, and the Gaussian KL to both sides and to N(0, I); sampling frequencies and modes.
#include <gtest/gtest.h>

#include <vector>

#include "nn/distributions.h"
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
