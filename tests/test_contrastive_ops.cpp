// The ops ContraBAR adds (issue 14), on the CPU in double against finite differences: layer normalisation (input,
// gain and bias gradients) against an independent two-pass computation, ELU's value and derivative, and the InfoNCE
// cross-entropy with masked negatives (its value against a direct log-softmax, its gradient, masked entries without
// influence or gradient, the hit flag, per-row weights); the float paths against double.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.h"
#include "kernels/buffer.h"
#include "nn/activation.h"
#include "nn/info_nce.h"
#include "nn/layer_norm.h"
#include "random_vectors.h"

using namespace dyn;

namespace {

// Σ_rows Σ_k w[i, k] · LN(x)[i, k] on the CPU backend: a scalar whose gradient is the backward with dy = w.
double ln_loss(const std::vector<double>& x, const std::vector<double>& gain, const std::vector<double>& bias,
               const std::vector<double>& w, int64_t n, int d) {
  std::vector<double> y(x.size()), mean(static_cast<size_t>(n)), rstd(static_cast<size_t>(n));
  layer_norm_forward(Backend::cpu, x.data(), gain.data(), bias.data(), y.data(), mean.data(), rstd.data(), n, d);
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += w[i] * y[i];
  return s;
}

}  // namespace

TEST(LayerNorm, ForwardMatchesTwoPassReference) {
  const int64_t n = 5;
  const int d = 7;
  const std::vector<double> x = randn(static_cast<size_t>(n * d), 1, 3.0), gain = randn(static_cast<size_t>(d), 2),
                            bias = randn(static_cast<size_t>(d), 3);
  std::vector<double> y(x.size()), mean(static_cast<size_t>(n)), rstd(static_cast<size_t>(n));
  layer_norm_forward(Backend::cpu, x.data(), gain.data(), bias.data(), y.data(), mean.data(), rstd.data(), n, d);
  for (int64_t i = 0; i < n; ++i) {
    double mu = 0, var = 0;
    for (int k = 0; k < d; ++k) mu += x[size_t(i * d + k)] / d;
    for (int k = 0; k < d; ++k) var += (x[size_t(i * d + k)] - mu) * (x[size_t(i * d + k)] - mu) / d;
    EXPECT_NEAR(mean[size_t(i)], mu, 1e-12);
    EXPECT_NEAR(rstd[size_t(i)], 1 / std::sqrt(var + 1e-5), 1e-12);
    for (int k = 0; k < d; ++k)
      EXPECT_NEAR(y[size_t(i * d + k)],
                  gain[size_t(k)] * (x[size_t(i * d + k)] - mu) / std::sqrt(var + 1e-5) + bias[size_t(k)], 1e-12);
  }
}

TEST(LayerNorm, GradientsOfInputGainAndBias) {
  const int64_t n = 4;
  const int d = 6;
  std::vector<double> x = randn(static_cast<size_t>(n * d), 4, 2.0), gain = randn(static_cast<size_t>(d), 5),
                      bias = randn(static_cast<size_t>(d), 6);
  const std::vector<double> w = randn(static_cast<size_t>(n * d), 7);
  std::vector<double> y(x.size()), mean(static_cast<size_t>(n)), rstd(static_cast<size_t>(n)), dx(x.size()),
      dgain(static_cast<size_t>(d), 0.5), dbias(static_cast<size_t>(d), -0.25);
  layer_norm_forward(Backend::cpu, x.data(), gain.data(), bias.data(), y.data(), mean.data(), rstd.data(), n, d);
  layer_norm_backward(Backend::cpu, x.data(), gain.data(), mean.data(), rstd.data(), w.data(), dx.data(), dgain.data(),
                      dbias.data(), n, d);
  for (int k = 0; k < d; ++k) {  // the parameter gradients accumulate onto what was there
    dgain[size_t(k)] -= 0.5;
    dbias[size_t(k)] += 0.25;
  }
  const auto loss = [&] { return ln_loss(x, gain, bias, w, n, d); };
  EXPECT_LT(gradcheck_rel_error(x, dx, loss), kGradTol);
  EXPECT_LT(gradcheck_rel_error(gain, dgain, loss), kGradTol);
  EXPECT_LT(gradcheck_rel_error(bias, dbias, loss), kGradTol);
  // without gain and bias: γ = 1, β = 0
  std::vector<double> y0(x.size()), dx0(x.size());
  layer_norm_forward(Backend::cpu, x.data(), static_cast<const double*>(nullptr), static_cast<const double*>(nullptr),
                     y0.data(), mean.data(), rstd.data(), n, d);
  layer_norm_backward(Backend::cpu, x.data(), static_cast<const double*>(nullptr), mean.data(), rstd.data(), w.data(),
                      dx0.data(), static_cast<double*>(nullptr), static_cast<double*>(nullptr), n, d);
  const std::vector<double> ones(static_cast<size_t>(d), 1.0), zeros(static_cast<size_t>(d), 0.0);
  EXPECT_LT(gradcheck_rel_error(x, dx0, [&] { return ln_loss(x, ones, zeros, w, n, d); }), kGradTol);
  EXPECT_LT(rel_l2(y0,
                   [&] {
                     std::vector<double> y1(x.size());
                     layer_norm_forward(Backend::cpu, x.data(), ones.data(), zeros.data(), y1.data(), mean.data(),
                                        rstd.data(), n, d);
                     return y1;
                   }()),
            1e-15);
}

TEST(LayerNorm, FloatMatchesDouble) {
  const int64_t n = 33;
  const int d = 24;
  const std::vector<double> x = randn(static_cast<size_t>(n * d), 8, 2.0), gain = randn(static_cast<size_t>(d), 9),
                            w = randn(static_cast<size_t>(n * d), 10);
  std::vector<double> y(x.size()), mean(static_cast<size_t>(n)), rstd(static_cast<size_t>(n)), dx(x.size()),
      dg(static_cast<size_t>(d), 0);
  layer_norm_forward(Backend::cpu, x.data(), gain.data(), gain.data(), y.data(), mean.data(), rstd.data(), n, d);
  layer_norm_backward(Backend::cpu, x.data(), gain.data(), mean.data(), rstd.data(), w.data(), dx.data(), dg.data(),
                      static_cast<double*>(nullptr), n, d);
  const std::vector<float> xf(x.begin(), x.end()), gf(gain.begin(), gain.end()), wf(w.begin(), w.end());
  std::vector<float> yf(x.size()), mf(static_cast<size_t>(n)), rf(static_cast<size_t>(n)), dxf(x.size()),
      dgf(static_cast<size_t>(d), 0);
  layer_norm_forward(Backend::cpu, xf.data(), gf.data(), gf.data(), yf.data(), mf.data(), rf.data(), n, d);
  layer_norm_backward(Backend::cpu, xf.data(), gf.data(), mf.data(), rf.data(), wf.data(), dxf.data(), dgf.data(),
                      static_cast<float*>(nullptr), n, d);
  EXPECT_LT(rel_l2(yf, y), kFloatTol);
  EXPECT_LT(rel_l2(dxf, dx), kFloatTol);
  EXPECT_LT(rel_l2(dgf, dg), kFloatTol);
}

TEST(Elu, ValueAndDerivativeFromTheOutput) {
  for (double x : {-3.0, -0.5, -1e-3, 0.0, 1e-3, 0.7, 4.0}) {
    const double y = activate(Activation::elu, x);
    EXPECT_NEAR(y, x > 0 ? x : std::exp(x) - 1, 1e-15) << x;
    const double h = 1e-6;
    if (std::fabs(x) > 1e-4) {
      const double num = (activate(Activation::elu, x + h) - activate(Activation::elu, x - h)) / (2 * h);
      EXPECT_NEAR(activate_backward(Activation::elu, y, 1.0), num, 1e-8) << x;
    }
    EXPECT_DOUBLE_EQ(activate_backward(Activation::elu, y, 2.0), 2.0 * activate_backward(Activation::elu, y, 1.0));
  }
}

TEST(InfoNce, ValueIsTheNegativeLogSoftmaxOfThePositiveOverValidEntries) {
  const std::vector<double> l = {0.3, -1.2, 2.0, 0.2, -0.1};
  const std::vector<uint8_t> valid = {1, 1, 0, 1, 1};  // entry 2 masked
  double z = 0;
  for (size_t j = 0; j < l.size(); ++j)
    if (valid[j]) z += std::exp(l[j]);
  EXPECT_NEAR(info_nce_row(l.data(), valid.data(), 5, 1.0, static_cast<double*>(nullptr)), std::log(z) - l[0], 1e-14);
  // masked out, the largest logit cannot beat the positive; unmasked it does
  EXPECT_TRUE(info_nce_hit(l.data(), valid.data(), 5));
  EXPECT_FALSE(info_nce_hit(l.data(), static_cast<const uint8_t*>(nullptr), 5));
  // large logits stay finite (max subtracted)
  const std::vector<double> big = {800.0, 790.0, 805.0};
  EXPECT_NEAR(info_nce_row(big.data(), static_cast<const uint8_t*>(nullptr), 3, 1.0, static_cast<double*>(nullptr)),
              5.0 + std::log(std::exp(-5.0) + std::exp(-15.0) + 1.0), 1e-10);
}

TEST(InfoNce, GradientWithMaskedNegatives) {
  const int n = 6, k = 16;
  std::vector<double> l = randn(static_cast<size_t>(n * k), 11, 2.0), w = {1.0, 0.5, 0.0, 2.0, 1.0, 1.0};
  std::vector<uint8_t> valid(static_cast<size_t>(n * k), 1);
  for (int i = 0; i < n; ++i)
    for (int j = 1; j < k; ++j) valid[size_t(i * k + j)] = uint8_t((i + j) % 3 != 0);
  valid[size_t(5 * k)] = 0;  // the positive counts even if flagged
  std::vector<double> loss(static_cast<size_t>(n)), dl(static_cast<size_t>(n * k));
  std::vector<uint8_t> hit(static_cast<size_t>(n));
  const auto total = [&] {
    std::vector<double> lo(static_cast<size_t>(n));
    info_nce_batch(Backend::cpu, l.data(), valid.data(), w.data(), lo.data(), static_cast<uint8_t*>(nullptr),
                   static_cast<double*>(nullptr), n, k);
    double s = 0;
    for (double v : lo) s += v;
    return s;
  };
  info_nce_batch(Backend::cpu, l.data(), valid.data(), w.data(), loss.data(), hit.data(), dl.data(), n, k);
  EXPECT_LT(gradcheck_rel_error(l, dl, total), kGradTol);
  for (int i = 0; i < n; ++i) {
    double row = 0;
    for (int j = 0; j < k; ++j) {
      row += dl[size_t(i * k + j)];
      if (j > 0 && !valid[size_t(i * k + j)]) {
        EXPECT_EQ(dl[size_t(i * k + j)], 0.0) << i << " " << j;
      }
    }
    EXPECT_NEAR(row, 0.0, 1e-12) << "softmax − one-hot sums to zero";
    EXPECT_EQ(hit[size_t(i)], uint8_t(w[size_t(i)] > 0 && info_nce_hit(l.data() + i * k, valid.data() + i * k, k)));
  }
  EXPECT_EQ(loss[2], 0.0) << "weight 0 skips the row";
  // a masked logit has no influence on the loss
  const double before = total();
  l[size_t(1)] += (valid[1] ? 0.0 : 5.0);
  l[size_t(k + 2)] += (valid[size_t(k + 2)] ? 0.0 : 7.0);
  EXPECT_EQ(total(), before);
}
