// GRU: a 2-unit case against values computed independently from PyTorch's equations, and gradient checks in
// double through time — with resets, an injection, and truncation — plus the float path against double.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "kernels/philox.h"
#include "nn/gru.h"
#include "tests/gradcheck.h"
#include "tests/random_vectors.h"

using namespace dyn;

namespace {

// Finite-difference checks of the GRU's double gradients: measured relative errors 1.6e-10 – 1.7e-9 over the cases
// below (full and truncated), so 1e-8 is 6× the largest and 10–60× most. A gradient partly computed in float
// (the input-gate gradients rounded to float) measures 2.0e-8 – 2.4e-8: caught here, passed by kGradTol = 1e-6.
constexpr double kGruGradTol = 1e-8;

}  // namespace

TEST(Gru, TwoUnitsMatchHandComputedValues) {
  // I = 1, H = 2; rows of weight_ih/weight_hh/biases in PyTorch's gate order (r, z, n)
  ParamLayout layout;
  const Gru gru(1, 2, layout, "gru");
  std::vector<double> p(layout.total());
  const std::vector<double> wih = {0.5, -0.3, 0.8, 0.1, -0.6, 0.4};
  const std::vector<double> whh = {0.2, -0.1, 0.3, 0.4, -0.5, 0.2, 0.1, 0.1, 0.7, -0.3, -0.2, 0.6};
  const std::vector<double> bih = {0.1, 0.0, -0.1, 0.2, 0.05, -0.05};
  const std::vector<double> bhh = {0.0, 0.1, 0.2, -0.1, 0.1, 0.3};
  std::copy(wih.begin(), wih.end(), p.begin() + layout.view("gru.weight_ih").offset);
  std::copy(whh.begin(), whh.end(), p.begin() + layout.view("gru.weight_hh").offset);
  std::copy(bih.begin(), bih.end(), p.begin() + layout.view("gru.bias_ih").offset);
  std::copy(bhh.begin(), bhh.end(), p.begin() + layout.view("gru.bias_hh").offset);
  Buffer<double> pb = Buffer<double>::copy_of(Backend::cpu, p),
                 x = Buffer<double>::copy_of(Backend::cpu, {1.0, -2.0, 0.5}),
                 h0 = Buffer<double>::copy_of(Backend::cpu, {0.0, 0.0});
  GruWorkspace<double> ws;
  gru.forward(Backend::cpu, pb.data(), x.data(), nullptr, static_cast<const double*>(nullptr), h0.data(), 3, 1, ws);
  const std::vector<double> h = ws.h.to_host();
  const double want[6] = {-0.13024188887780708, 0.20270016252724532, 0.6505286197143344,
                          -0.1639222268251734,  0.4064518642528989,  -0.006716989783357788};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(h[i], want[i], 1e-12) << i;

  // a reset before step 1 restarts from zeros: h_2 equals the first step of a fresh run on x = -2
  std::vector<uint8_t> reset = {0, 1, 0};
  Buffer<uint8_t> rb(Backend::cpu, 3);
  rb.from_host(reset);
  gru.forward(Backend::cpu, pb.data(), x.data(), rb.data(), static_cast<const double*>(nullptr), h0.data(), 3, 1, ws);
  const std::vector<double> hr = ws.h.to_host();
  Buffer<double> x2 = Buffer<double>::copy_of(Backend::cpu, {-2.0});
  GruWorkspace<double> ws2;
  gru.forward(Backend::cpu, pb.data(), x2.data(), nullptr, static_cast<const double*>(nullptr), h0.data(), 1, 1, ws2);
  const std::vector<double> fresh = ws2.h.to_host();
  EXPECT_DOUBLE_EQ(hr[2], fresh[0]);
  EXPECT_DOUBLE_EQ(hr[3], fresh[1]);
}

struct GruCase {
  int input, hidden, steps, batch, truncate;
  bool resets, inject;
};

class GruGrad : public ::testing::TestWithParam<GruCase> {};

TEST_P(GruGrad, BackpropThroughTimeMatchesFiniteDifferences) {
  const GruCase c = GetParam();
  const int H = c.hidden, N = c.batch, T = c.steps, I = c.input;
  ParamLayout layout;
  const Gru gru(I, H, layout, "enc");
  std::vector<double> p;
  initialize_params(layout, 11, p);
  for (size_t i = 0; i < p.size(); ++i) p[i] += 0.1 * std::sin(double(i));  // non-zero biases
  std::vector<double> x = randn(size_t(T) * N * I, 12), h0 = randn(size_t(N) * H, 13, 0.5);
  std::vector<double> inj = randn(size_t(T) * N * 3 * H, 14, 0.3);
  const std::vector<double> r = randn(size_t(T) * N * H, 15);  // loss = Σ_t Σ h_t ⊙ R_t
  std::vector<uint8_t> reset(size_t(T) * N, 0);
  if (c.resets)
    for (int t = 0; t < T; ++t)
      for (int n = 0; n < N; ++n) reset[size_t(t) * N + n] = (t == 2 && n % 2 == 0) || (t == 4 && n == 1);
  Buffer<uint8_t> rb(Backend::cpu, reset.size());
  rb.from_host(reset);

  auto loss = [&] {
    Buffer<double> pb = Buffer<double>::copy_of(Backend::cpu, p), xb = Buffer<double>::copy_of(Backend::cpu, x),
                   hb = Buffer<double>::copy_of(Backend::cpu, h0), ib = Buffer<double>::copy_of(Backend::cpu, inj);
    GruWorkspace<double> ws;
    gru.forward(Backend::cpu, pb.data(), xb.data(), rb.data(), c.inject ? ib.data() : nullptr, hb.data(), T, N, ws);
    const std::vector<double> h = ws.h.to_host();
    double l = 0;
    for (size_t i = 0; i < h.size(); ++i) l += h[i] * r[i];
    return l;
  };

  Buffer<double> pb = Buffer<double>::copy_of(Backend::cpu, p), xb = Buffer<double>::copy_of(Backend::cpu, x),
                 hb = Buffer<double>::copy_of(Backend::cpu, h0), ib = Buffer<double>::copy_of(Backend::cpu, inj),
                 dh = Buffer<double>::copy_of(Backend::cpu, r);
  Buffer<double> grads(Backend::cpu, p.size()), dx(Backend::cpu, x.size()), dinj(Backend::cpu, inj.size()),
      dh0(Backend::cpu, h0.size());
  grads.zero();
  GruWorkspace<double> ws;
  gru.forward(Backend::cpu, pb.data(), xb.data(), rb.data(), c.inject ? ib.data() : nullptr, hb.data(), T, N, ws);
  gru.backward(Backend::cpu, pb.data(), grads.data(), xb.data(), rb.data(), dh.data(), c.truncate, dx.data(),
               dinj.data(), dh0.data(), ws);

  if (c.truncate == 0) {
    EXPECT_LT(gradcheck_rel_error(p, grads.to_host(), loss), kGruGradTol);
    EXPECT_LT(gradcheck_rel_error(x, dx.to_host(), loss), kGruGradTol);
    EXPECT_LT(gradcheck_rel_error(h0, dh0.to_host(), loss), kGruGradTol);
    if (c.inject) {
      EXPECT_LT(gradcheck_rel_error(inj, dinj.to_host(), loss), kGruGradTol);
    }
  } else {
    // truncated BPTT is the exact gradient of the loss with h_{t-1} held constant at every boundary t % k == 0:
    // check it by finite differences of x in the last window only, where nothing is cut, and that a gradient
    // never reaches an input before the boundary from losses after it
    const int k = c.truncate, last = ((T - 1) / k) * k;
    std::vector<double> r_last(r.size(), 0.0);
    for (size_t i = size_t(last) * N * H; i < r.size(); ++i) r_last[i] = r[i];
    Buffer<double> dh_last = Buffer<double>::copy_of(Backend::cpu, r_last), g2(Backend::cpu, p.size()),
                   dx2(Backend::cpu, x.size());
    g2.zero();
    gru.backward(Backend::cpu, pb.data(), g2.data(), xb.data(), rb.data(), dh_last.data(), k, dx2.data(),
                 static_cast<double*>(nullptr), static_cast<double*>(nullptr), ws);
    const std::vector<double> dxl = dx2.to_host();
    for (size_t i = 0; i < size_t(last) * N * I; ++i) ASSERT_EQ(dxl[i], 0.0) << "gradient crossed the boundary";
    // inside the window the truncated gradient equals the full one
    Buffer<double> g3(Backend::cpu, p.size()), dx3(Backend::cpu, x.size());
    g3.zero();
    gru.backward(Backend::cpu, pb.data(), g3.data(), xb.data(), rb.data(), dh_last.data(), 0, dx3.data(),
                 static_cast<double*>(nullptr), static_cast<double*>(nullptr), ws);
    const std::vector<double> dxf = dx3.to_host();
    for (size_t i = size_t(last) * N * I; i < dxf.size(); ++i) EXPECT_NEAR(dxl[i], dxf[i], 1e-14);
    bool any_before = false;
    for (size_t i = 0; i < size_t(last) * N * I; ++i) any_before = any_before || dxf[i] != 0.0;
    EXPECT_TRUE(any_before) << "the full gradient does reach earlier inputs";

    // the whole truncated gradient — parameters, inputs, injection, h0 — by finite differences of the truncated
    // loss: Σ over the windows [s, s + k) of Σ_t h_t ⊙ R_t, each window run from the state h_{s−1} of the
    // unperturbed forward held constant (h0 for the first), so a perturbation acts only within its window.
    // Measured relative errors 2.5e-10 – 1.7e-9 (bound kGruGradTol); cutting only at the last boundary gives 0.06–0.3
    const std::vector<double> h_held = ws.h.to_host();
    auto truncated_loss = [&] {
      double l = 0;
      for (int s = 0; s < T; s += k) {
        const int len = std::min(k, T - s);
        const size_t rows = size_t(s) * N;
        const std::vector<double> start =
            s == 0 ? h0 : std::vector<double>(h_held.begin() + (rows - N) * H, h_held.begin() + rows * H);
        Buffer<double> pw = Buffer<double>::copy_of(Backend::cpu, p),
                       xw = Buffer<double>::copy_of(
                           Backend::cpu, std::vector<double>(x.begin() + rows * I, x.begin() + (rows + len * N) * I)),
                       iw = Buffer<double>::copy_of(
                           Backend::cpu,
                           std::vector<double>(inj.begin() + rows * 3 * H, inj.begin() + (rows + len * N) * 3 * H)),
                       hw = Buffer<double>::copy_of(Backend::cpu, start);
        Buffer<uint8_t> rw(Backend::cpu, size_t(len) * N);
        rw.from_host(std::vector<uint8_t>(reset.begin() + rows, reset.begin() + rows + len * N));
        GruWorkspace<double> wsw;
        gru.forward(Backend::cpu, pw.data(), xw.data(), rw.data(), c.inject ? iw.data() : nullptr, hw.data(), len, N,
                    wsw);
        const std::vector<double> h = wsw.h.to_host();
        for (size_t i = 0; i < h.size(); ++i) l += h[i] * r[rows * H + i];
      }
      return l;
    };
    EXPECT_LT(gradcheck_rel_error(p, grads.to_host(), truncated_loss), kGruGradTol);
    EXPECT_LT(gradcheck_rel_error(x, dx.to_host(), truncated_loss), kGruGradTol);
    EXPECT_LT(gradcheck_rel_error(h0, dh0.to_host(), truncated_loss), kGruGradTol);
    if (c.inject) {
      EXPECT_LT(gradcheck_rel_error(inj, dinj.to_host(), truncated_loss), kGruGradTol);
    }
  }

  // the float path agrees with the double path
  Buffer<float> pf = Buffer<float>::copy_of(Backend::cpu, p), xf = Buffer<float>::copy_of(Backend::cpu, x),
                hf = Buffer<float>::copy_of(Backend::cpu, h0), inf = Buffer<float>::copy_of(Backend::cpu, inj),
                dhf = Buffer<float>::copy_of(Backend::cpu, r);
  Buffer<float> gf(Backend::cpu, p.size()), dxf(Backend::cpu, x.size());
  gf.zero();
  GruWorkspace<float> wsf;
  gru.forward(Backend::cpu, pf.data(), xf.data(), rb.data(), c.inject ? inf.data() : nullptr, hf.data(), T, N, wsf);
  EXPECT_LT(rel_l2(wsf.h.to_host(), ws.h.to_host()), kFloatTol);
  gru.backward(Backend::cpu, pf.data(), gf.data(), xf.data(), rb.data(), dhf.data(), c.truncate, dxf.data(),
               static_cast<float*>(nullptr), static_cast<float*>(nullptr), wsf);
  EXPECT_LT(rel_l2(gf.to_host(), grads.to_host()), kFloatTol);
}

INSTANTIATE_TEST_SUITE_P(Cases, GruGrad,
                         ::testing::Values(GruCase{3, 4, 6, 3, 0, false, false}, GruCase{3, 4, 6, 3, 0, true, false},
                                           GruCase{2, 5, 7, 2, 0, true, true}, GruCase{3, 4, 8, 3, 3, true, false},
                                           GruCase{4, 8, 9, 4, 4, false, true}));
