// Linear / MLP: forward against a plain loop, gradient checks in double (dW, db, dx; overwrite and accumulate),
// and the float path against the double path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "kernels/philox.h"
#include "nn/mlp.h"
#include "tests/gradcheck.h"
#include "tests/random_vectors.h"

using namespace dyn;

namespace {

struct MlpCase {
  MlpShape shape;
  int batch;
};

// loss = Σ y ⊙ R for the MLP at parameters p (double, CPU).
double mlp_loss(const Mlp& mlp, const std::vector<double>& p, const std::vector<double>& x,
                const std::vector<double>& r, int batch) {
  Buffer<double> pb = Buffer<double>::copy_of(Backend::cpu, p), xb = Buffer<double>::copy_of(Backend::cpu, x);
  MlpWorkspace<double> ws;
  mlp.forward(Backend::cpu, pb.data(), xb.data(), batch, ws);
  const std::vector<double> y = ws.act.back().to_host();
  double l = 0;
  for (size_t i = 0; i < y.size(); ++i) l += y[i] * r[i];
  return l;
}

}  // namespace

TEST(Linear, ForwardMatchesLoop) {
  const int B = 3, I = 4, O = 5;
  const auto x = randn(B * I, 1), w = randn(O * I, 2), b = randn(O, 3);
  Buffer<double> xb = Buffer<double>::copy_of(Backend::cpu, x), wb = Buffer<double>::copy_of(Backend::cpu, w),
                 bb = Buffer<double>::copy_of(Backend::cpu, b), y(Backend::cpu, B * O);
  linear_forward(Backend::cpu, xb.data(), wb.data(), bb.data(), y.data(), B, I, O);
  const auto yh = y.to_host();
  for (int n = 0; n < B; ++n)
    for (int o = 0; o < O; ++o) {
      double want = b[o];
      for (int i = 0; i < I; ++i) want += x[n * I + i] * w[o * I + i];
      EXPECT_NEAR(yh[n * O + o], want, 1e-12);
    }
}

TEST(Linear, BackwardAccumulateAddsToExisting) {
  const int B = 4, I = 3, O = 2;
  const auto x = randn(B * I, 4), w = randn(O * I, 5), dy = randn(B * O, 6);
  Buffer<double> xb = Buffer<double>::copy_of(Backend::cpu, x), wb = Buffer<double>::copy_of(Backend::cpu, w),
                 dyb = Buffer<double>::copy_of(Backend::cpu, dy);
  Buffer<double> dx1(Backend::cpu, B * I), dw1(Backend::cpu, O * I), db1(Backend::cpu, O);
  linear_backward(Backend::cpu, xb.data(), wb.data(), dyb.data(), dx1.data(), dw1.data(), db1.data(), B, I, O, false);
  Buffer<double> dx2 = Buffer<double>::copy_of(Backend::cpu, std::vector<double>(B * I, 1.0)),
                 dw2 = Buffer<double>::copy_of(Backend::cpu, std::vector<double>(O * I, 1.0)),
                 db2 = Buffer<double>::copy_of(Backend::cpu, std::vector<double>(O, 1.0));
  linear_backward(Backend::cpu, xb.data(), wb.data(), dyb.data(), dx2.data(), dw2.data(), db2.data(), B, I, O, true);
  const auto a = dw1.to_host(), c = dw2.to_host();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(c[i], a[i] + 1.0, 1e-12);
  const auto d = db1.to_host(), e = db2.to_host();
  for (int o = 0; o < O; ++o) {
    double want = 0;
    for (int n = 0; n < B; ++n) want += dy[n * O + o];
    EXPECT_NEAR(d[o], want, 1e-12);
    EXPECT_NEAR(e[o], want + 1.0, 1e-12);
  }
  const auto f = dx1.to_host(), g = dx2.to_host();
  for (size_t i = 0; i < f.size(); ++i) EXPECT_NEAR(g[i], f[i] + 1.0, 1e-12);
}

class MlpGrad : public ::testing::TestWithParam<MlpCase> {};

TEST_P(MlpGrad, FiniteDifferencesInDouble) {
  const MlpCase c = GetParam();
  ParamLayout layout;
  const Mlp mlp(c.shape, layout, "mlp");
  std::vector<double> p;
  initialize_params(layout, 7, p);
  for (double& v : p) v += 0.05;  // non-zero biases too
  const int in = c.shape.sizes.front(), out = c.shape.sizes.back();
  std::vector<double> x = randn(size_t(c.batch) * in, 8), r = randn(size_t(c.batch) * out, 9);

  // analytic gradients
  Buffer<double> pb = Buffer<double>::copy_of(Backend::cpu, p), xb = Buffer<double>::copy_of(Backend::cpu, x),
                 rb = Buffer<double>::copy_of(Backend::cpu, r);
  Buffer<double> grads(Backend::cpu, p.size()), dx(Backend::cpu, x.size());
  grads.zero();
  MlpWorkspace<double> ws;
  mlp.forward(Backend::cpu, pb.data(), xb.data(), c.batch, ws);
  mlp.backward(Backend::cpu, pb.data(), grads.data(), xb.data(), rb.data(), dx.data(), ws, false);

  EXPECT_LT(gradcheck_rel_error(p, grads.to_host(), [&] { return mlp_loss(mlp, p, x, r, c.batch); }), kGradTol);
  EXPECT_LT(gradcheck_rel_error(x, dx.to_host(), [&] { return mlp_loss(mlp, p, x, r, c.batch); }), kGradTol);

  // the float path agrees with the double path
  Buffer<float> pf = Buffer<float>::copy_of(Backend::cpu, p), xf = Buffer<float>::copy_of(Backend::cpu, x),
                rf = Buffer<float>::copy_of(Backend::cpu, r);
  Buffer<float> gf(Backend::cpu, p.size()), dxf(Backend::cpu, x.size());
  gf.zero();
  MlpWorkspace<float> wsf;
  mlp.forward(Backend::cpu, pf.data(), xf.data(), c.batch, wsf);
  EXPECT_LT(rel_l2(wsf.act.back().to_host(), ws.act.back().to_host()), kFloatTol);
  mlp.backward(Backend::cpu, pf.data(), gf.data(), xf.data(), rf.data(), dxf.data(), wsf, false);
  EXPECT_LT(rel_l2(gf.to_host(), grads.to_host()), kFloatTol);
  EXPECT_LT(rel_l2(dxf.to_host(), dx.to_host()), kFloatTol);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MlpGrad,
                         ::testing::Values(MlpCase{{{5, 16, 16, 3}, Activation::relu, Activation::none}, 7},
                                           MlpCase{{{6, 32, 32, 32, 4}, Activation::tanh, Activation::tanh}, 5},
                                           MlpCase{{{4, 8, 2}, Activation::relu, Activation::relu}, 9},
                                           MlpCase{{{7, 16, 16, 3}, Activation::elu, Activation::elu}, 6},
                                           MlpCase{{{3, 2}, Activation::relu, Activation::none}, 4}));

TEST(Params, OrthogonalInitIsOrthogonalWithGain) {
  for (auto [rows, cols] : {std::pair{64, 16}, std::pair{16, 64}, std::pair{32, 32}}) {
    ParamLayout layout;
    layout.add("w", {rows, cols}, Init::orthogonal, 2.0);
    std::vector<double> w;
    initialize_params(layout, 3, w);
    // the smaller Gram matrix is gain² · I
    const bool tall = rows >= cols;
    const int k = tall ? cols : rows, m = tall ? rows : cols;
    for (int a = 0; a < k; ++a)
      for (int b2 = 0; b2 < k; ++b2) {
        double dot = 0;
        for (int i = 0; i < m; ++i)
          dot += tall ? w[i * cols + a] * w[i * cols + b2] : w[a * cols + i] * w[b2 * cols + i];
        EXPECT_NEAR(dot, a == b2 ? 4.0 : 0.0, 1e-9);
      }
  }
}

TEST(Params, NormcRowsHaveTheGivenNormAndZerosAreZero) {
  ParamLayout layout;
  layout.add("w", {8, 20}, Init::normc, 0.01);
  layout.add("b", {8}, Init::zeros);
  std::vector<float> p;
  initialize_params(layout, 3, p);
  for (int r = 0; r < 8; ++r) {
    double s = 0;
    for (int c = 0; c < 20; ++c) s += double(p[r * 20 + c]) * p[r * 20 + c];
    EXPECT_NEAR(std::sqrt(s), 0.01, 1e-6);
  }
  for (int i = 0; i < 8; ++i) EXPECT_EQ(p[160 + i], 0.0f);
  EXPECT_EQ(layout.view("b").offset, 160u);
  EXPECT_THROW(layout.add("b", {1}, Init::zeros), std::invalid_argument);
}

TEST(Params, ConstantFillsTheValue) {  // a LayerNorm gain starts at 1
  ParamLayout layout;
  layout.add("g", {5}, Init::constant, 1.0);
  layout.add("h", {3}, Init::constant, -0.5);
  std::vector<double> p;
  initialize_params(layout, 9, p);
  EXPECT_EQ(p, (std::vector<double>{1, 1, 1, 1, 1, -0.5, -0.5, -0.5}));
}

TEST(Params, InitIsDeterministicPerSeed) {
  ParamLayout layout;
  Mlp mlp({{4, 32, 2}}, layout, "pi");
  std::vector<float> a, b, c;
  initialize_params(layout, 1, a);
  initialize_params(layout, 1, b);
  initialize_params(layout, 2, c);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(FusedMlp, SupportedShapes) {
  EXPECT_TRUE(fused_mlp_supported({{17, 128, 128, 6}}));
  EXPECT_TRUE(fused_mlp_supported({{64, 64, 64, 64, 64}}));     // 3 hidden layers
  EXPECT_TRUE(fused_mlp_supported({{20, 5}}));                  // single layer, padded to 32
  EXPECT_FALSE(fused_mlp_supported({{17, 256, 256, 6}}));       // width 256
  EXPECT_FALSE(fused_mlp_supported({{17, 128, 64, 6}}));        // unequal hidden widths
  EXPECT_FALSE(fused_mlp_supported({{200, 128, 128, 6}}));      // input wider than W
  EXPECT_FALSE(fused_mlp_supported({{8, 32, 32, 32, 32, 1}}));  // 5 layers
}

TEST(MlpWorkspace, ReuseAfterALargerBatchUsesTheNewBatch) {
  // a workspace sized by a larger pass must not make the next, smaller backward read stale rows
  ParamLayout layout;
  const Mlp mlp({{3, 8, 2}}, layout, "m");
  std::vector<float> p;
  initialize_params(layout, 1, p);
  auto pb = Buffer<float>::copy_of(Backend::cpu, p);
  auto big = Buffer<float>::copy_of(Backend::cpu, randn<float>(3 * 50, 2));
  auto x = Buffer<float>::copy_of(Backend::cpu, randn<float>(3 * 10, 3)),
       dy = Buffer<float>::copy_of(Backend::cpu, randn<float>(2 * 10, 4));
  Buffer<float> g1(Backend::cpu, p.size()), g2(Backend::cpu, p.size());
  MlpWorkspace<float> reused, fresh;
  mlp.forward(Backend::cpu, pb.data(), big.data(), 50, reused);
  mlp.forward(Backend::cpu, pb.data(), x.data(), 10, reused);
  EXPECT_EQ(reused.batch, 10);
  mlp.backward(Backend::cpu, pb.data(), g1.data(), x.data(), dy.data(), static_cast<float*>(nullptr), reused, false);
  mlp.forward(Backend::cpu, pb.data(), x.data(), 10, fresh);
  mlp.backward(Backend::cpu, pb.data(), g2.data(), x.data(), dy.data(), static_cast<float*>(nullptr), fresh, false);
  EXPECT_EQ(g1.to_host(), g2.to_host());
}

// tanh_exp (the GRU's candidate-gate tanh) against std::tanh over [−20, 20], through the Taylor branch's
// edge at |x| = 1/16, in both precisions. The bounds are a few ulps: a formula slip (a wrong series
// coefficient, the sign, the branch point) breaks them by orders of magnitude.
TEST(Activation, TanhExpMatchesStdTanh) {
  double worst_f = 0, worst_d = 0;
  for (int i = -400000; i <= 400000; ++i) {
    const double x = 20.0 * i / 400000.0;
    const double ref = std::tanh(x);
    const float xf = static_cast<float>(x);
    const double reff = std::tanh(static_cast<double>(xf));
    const double ulp_f = std::max(std::abs(reff) * 5.96e-8, 1e-45);
    worst_f = std::max(worst_f, std::abs(double(tanh_exp(xf)) - reff) / ulp_f);
    worst_d = std::max(worst_d, std::abs(tanh_exp(x) - ref) / std::max(std::abs(ref), 1e-300));
  }
  std::printf("tanh_exp: worst float error %.2f ulp, worst double relative error %.2e\n", worst_f, worst_d);
  EXPECT_LT(worst_f, 8.0);
  EXPECT_LT(worst_d, 2e-14);
  EXPECT_EQ(tanh_exp(0.0f), 0.0f);
  EXPECT_EQ(tanh_exp(100.0f), 1.0f);
  EXPECT_EQ(tanh_exp(-100.0f), -1.0f);
  EXPECT_TRUE(std::isnan(tanh_exp(std::nanf(""))));
}
