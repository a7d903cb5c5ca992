// ContraBAR's CPC (issue 14) on the CPU: the plan's pairs (positives k steps ahead in the anchor's own trajectory,
// negatives never from it, every valid pair grouped under its z row exactly once, reproducible per step), the
// decomposed classifier against the plain MLP on the materialised [z, h] row, the loss against an independent
// computation, the whole CPC loss gradient-checked in double through the classifiers, the GRU, the LayerNorm and the
// embeddings (discrete and continuous actions), and the online encoder equal to the offline pass.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "algo/cpc_model.h"
#include "belief_episodes.h"
#include "gradcheck.h"
#include "kernels/buffer.h"
#include "nn/activation.h"
#include "random_vectors.h"

using namespace dyn;

namespace {

CpcShape small_shape(bool discrete) {
  CpcShape s;
  s.obs = 6;
  s.actions = discrete ? 5 : 2;
  s.discrete_actions = discrete;
  s.embed_s = 3;
  s.embed_a = 2;
  s.embed_r = 2;
  s.hidden = 5;
  s.lookahead = 3;
  s.negatives = 4;
  return s;
}

// The episodes of tests/belief_episodes.h on the backend, with continuous actions when the shape wants them.
struct DeviceEpisodes {
  Buffer<double> obs, rew, act_value;
  Buffer<int32_t> act;
  EpisodeBatchView<double> view;
  DeviceEpisodes(const HostEpisodes& e, const CpcShape& s) {
    obs = Buffer<double>::copy_of(Backend::cpu, e.obs);
    rew = Buffer<double>::copy_of(Backend::cpu, e.rew);
    act = Buffer<int32_t>::copy_of(Backend::cpu, e.act);
    std::vector<double> av = randn(size_t(e.steps) * e.batch * s.actions, 77);
    act_value = Buffer<double>::copy_of(Backend::cpu, av);
    view.steps = e.steps;
    view.batch = e.batch;
    view.obs = obs.data();
    view.rew = rew.data();
    view.act = act.data();
    view.act_value = s.discrete_actions ? nullptr : act_value.data();
  }
};

// Parameters moved off their initial values (gains and biases included) so no gradient vanishes by symmetry.
std::vector<double> perturbed_params(const ParamLayout& layout, uint32_t seed) {
  std::vector<double> p;
  initialize_params(layout, seed, p);
  const std::vector<double> noise = randn(p.size(), seed + 1, 0.3);
  for (size_t i = 0; i < p.size(); ++i) p[i] += noise[i];
  return p;
}

}  // namespace

TEST(CpcPlan, PositivesAheadNegativesFromOtherTrajectoriesGroupedOnce) {
  const int T = 12, B = 5, K = 4, N = 6, J = N + 1;
  const CpcPlan p = plan_cpc(T, B, K, N, 3, 7);
  const int64_t A = p.anchors(), R = p.rows();
  int64_t valid = 0;
  std::vector<int> seen(p.z_pair.size(), 0);
  for (int k = 1; k <= K; ++k) {
    for (int64_t a = 0; a < A; ++a) {
      const int t = int(a / B), b = int(a % B);
      const size_t row = size_t(int64_t(k - 1) * A + a);
      ASSERT_EQ(p.valid[row], t + k <= T);
      valid += p.valid[row];
      if (!p.valid[row]) continue;
      const int32_t* zr = p.z_row.data() + row * J;
      EXPECT_EQ(zr[0], (t + k) * B + b) << "the positive is x_{t+k} of the anchor's own trajectory";
      for (int j = 1; j < J; ++j) {
        EXPECT_NE(zr[j] % B, b) << "a negative from the anchor's own trajectory";
        EXPECT_GE(zr[j] / B, 1) << "negatives are transitions: latent rows 1..T";
        EXPECT_LE(zr[j] / B, T);
      }
    }
    // each valid pair of k appears exactly once, under its own z row
    const int32_t* off = p.z_offset.data() + int64_t(k - 1) * (R + 1);
    for (int64_t r = 0; r < R; ++r)
      for (int32_t q = off[r]; q < off[r + 1]; ++q) {
        const int32_t pair = p.z_pair[size_t(q)];
        EXPECT_EQ(p.z_row[size_t(int64_t(k - 1) * A * J + pair)], r);
        EXPECT_TRUE(p.valid[size_t(int64_t(k - 1) * A + pair / J)]);
        ++seen[size_t(q)];
      }
  }
  EXPECT_EQ(valid, p.valid_anchors);
  EXPECT_EQ(int64_t(p.z_pair.size()), valid * J);
  for (int s : seen) EXPECT_EQ(s, 1);
  // reproducible per (seed, step), different at another step; every other trajectory gets drawn
  const CpcPlan again = plan_cpc(T, B, K, N, 3, 7), next = plan_cpc(T, B, K, N, 3, 8);
  EXPECT_EQ(again.z_row, p.z_row);
  EXPECT_NE(next.z_row, p.z_row);
  std::set<int> others;
  for (int j = 1; j < J; ++j) others.insert(p.z_row[size_t(j)] % B);
  for (int64_t a = 0; a < A; a += B)
    for (int j = 1; j < J; ++j) others.insert(p.z_row[size_t(a * J + j)] % B);
  EXPECT_EQ(others.size(), size_t(B - 1)) << "anchor 0 (trajectory 0) and its column draw from all the others";
  EXPECT_THROW(plan_cpc(T, 1, K, N, 3, 7), std::invalid_argument);
}

// The decomposed classifier's logits against f_k on the materialised row [z, h]: LayerNorm, Linear, ELU, Linear.
TEST(CpcLoss, DecomposedLogitsAndLossMatchTheDirectClassifier) {
  const CpcShape s = small_shape(true);
  ParamLayout layout;
  CpcModel<double> m(Backend::cpu, s, layout);
  const std::vector<double> p = perturbed_params(layout, 5);
  Buffer<double> params = Buffer<double>::copy_of(Backend::cpu, p), grads(Backend::cpu, p.size());
  grads.zero();
  const HostEpisodes he = random_episodes(7, 3, 2, 11);
  DeviceEpisodes ep(he, s);
  const CpcPlan plan = plan_cpc(7, 3, s.lookahead, s.negatives, 1, 0);
  CpcLossWorkspace<double> ws;
  const CpcLossStats st = m.loss(params.data(), grads.data(), ep.view, plan, ws);
  const std::vector<double> x = ws.enc.x.to_host(), h = ws.enc.gru.h.to_host(), logits = ws.logits.to_host();
  const int E = s.embed(), H = s.hidden, D = s.pair_in(), D1 = s.classifier_hidden(), J = s.logits();
  const int64_t A = plan.anchors();
  double total = 0;
  int64_t rows = 0, hits = 0;
  for (int k = 0; k < s.lookahead; ++k) {
    const auto& c = m.cls[size_t(k)];
    for (int64_t a = 0; a < A; ++a) {
      if (!plan.valid[size_t(k * A + a)]) continue;
      std::vector<double> l(static_cast<size_t>(J));
      for (int j = 0; j < J; ++j) {
        const int32_t zr = plan.z_row[size_t((k * A + a) * J + j)];
        std::vector<double> u(static_cast<size_t>(D));
        for (int e = 0; e < E; ++e) u[size_t(e)] = x[size_t(zr * E + e)];
        for (int e = 0; e < H; ++e) u[size_t(E + e)] = h[size_t(a * H + e)];
        double mu = 0, var = 0;
        for (double v : u) mu += v / D;
        for (double v : u) var += (v - mu) * (v - mu) / D;
        for (int e = 0; e < D; ++e)
          u[size_t(e)] =
              (u[size_t(e)] - mu) / std::sqrt(var + 1e-5) * p[c.ln_gain + size_t(e)] + p[c.ln_bias + size_t(e)];
        double out = p[c.b2];
        for (int r = 0; r < D1; ++r) {
          double pre = p[c.b1 + size_t(r)];
          for (int e = 0; e < D; ++e) pre += p[c.w1 + size_t(r * D + e)] * u[size_t(e)];
          out += p[c.w2 + size_t(r)] * (pre > 0 ? pre : std::expm1(pre));
        }
        l[size_t(j)] = out;
        EXPECT_NEAR(logits[size_t((k * A + a) * J + j)], out, 1e-10) << "k " << k << " anchor " << a << " pair " << j;
      }
      double z = 0;
      for (double v : l) z += std::exp(v);
      total += std::log(z) - l[0];
      ++rows;
      bool hit = true;
      for (int j = 1; j < J; ++j) hit = hit && l[size_t(j)] < l[0];
      hits += hit;
    }
  }
  EXPECT_NEAR(st.loss, total / double(rows), 1e-10);
  EXPECT_NEAR(st.accuracy, double(hits) / double(rows), 1e-12);
  EXPECT_EQ(st.accuracy_k.size(), size_t(s.lookahead));
}

// The whole CPC loss, every parameter, in double.
TEST(CpcLoss, GradientCheckThroughClassifiersGruLayerNormAndEmbeddings) {
  for (bool discrete : {true, false}) {
    const CpcShape s = small_shape(discrete);
    ParamLayout layout;
    CpcModel<double> m(Backend::cpu, s, layout);
    std::vector<double> p = perturbed_params(layout, 9);
    const HostEpisodes he = random_episodes(6, 3, 2, 21);
    DeviceEpisodes ep(he, s);
    const CpcPlan plan = plan_cpc(6, 3, s.lookahead, s.negatives, 4, 2);
    CpcLossWorkspace<double> ws;
    Buffer<double> grads(Backend::cpu, p.size());
    const auto loss = [&] {
      Buffer<double> params = Buffer<double>::copy_of(Backend::cpu, p);
      grads.zero();
      return m.loss(params.data(), grads.data(), ep.view, plan, ws).loss;
    };
    loss();
    const std::vector<double> analytic = grads.to_host();
    double norm = 0;
    for (double g : analytic) norm += g * g;
    ASSERT_GT(norm, 1e-8);
    EXPECT_LT(gradcheck_rel_error(p, analytic, loss), kGradTol) << (discrete ? "discrete" : "continuous");
    // every named block receives gradient (nothing silently detached)
    for (const ParamView& v : layout.views()) {
      double s2 = 0;
      for (size_t i = 0; i < v.size; ++i) s2 += analytic[v.offset + i] * analytic[v.offset + i];
      EXPECT_GT(s2, 0.0) << v.name;
    }
  }
}

TEST(CpcEncoder, OnlineStepsEqualTheOfflinePass) {
  const CpcShape s = small_shape(true);
  ParamLayout layout;
  CpcModel<double> m(Backend::cpu, s, layout);
  Buffer<double> params = Buffer<double>::copy_of(Backend::cpu, perturbed_params(layout, 13));
  const int T = 5, B = 2;
  const HostEpisodes he = random_episodes(T, B, 2, 3);
  DeviceEpisodes ep(he, s);
  const CpcPlan plan = plan_cpc(T, B, s.lookahead, s.negatives, 1, 0);
  CpcLossWorkspace<double> ws;
  Buffer<double> grads(Backend::cpu, layout.total());
  m.loss(params.data(), grads.data(), ep.view, plan, ws);
  const std::vector<double> offline = ws.enc.gru.h.to_host();
  // step by step, carrying h, from the same inputs
  const std::vector<int32_t> pa = ws.prev_a.to_host();
  const std::vector<double> pr = ws.prev_r.to_host();
  const std::vector<uint8_t> st = ws.start.to_host();
  std::vector<double> h(size_t(B) * s.hidden, 0.0);
  CpcEncoderWorkspace<double> one;
  for (int t = 0; t <= T; ++t) {
    const Buffer<double> obs = Buffer<double>::copy_of(
        Backend::cpu, std::vector<double>(he.obs.begin() + t * B * s.obs, he.obs.begin() + (t + 1) * B * s.obs));
    const Buffer<int32_t> a =
        Buffer<int32_t>::copy_of(Backend::cpu, std::vector<int32_t>(pa.begin() + t * B, pa.begin() + (t + 1) * B));
    const Buffer<double> r =
        Buffer<double>::copy_of(Backend::cpu, std::vector<double>(pr.begin() + t * B, pr.begin() + (t + 1) * B));
    const Buffer<uint8_t> s0 =
        Buffer<uint8_t>::copy_of(Backend::cpu, std::vector<uint8_t>(st.begin() + t * B, st.begin() + (t + 1) * B));
    const Buffer<double> h0 = Buffer<double>::copy_of(Backend::cpu, h);
    m.encode(params.data(), obs.data(), a.data(), static_cast<const double*>(nullptr), r.data(), s0.data(), h0.data(),
             1, B, one);
    h = one.gru.h.to_host();
    for (int i = 0; i < B * s.hidden; ++i)
      EXPECT_NEAR(h[size_t(i)], offline[size_t(t * B * s.hidden + i)], 1e-13) << "t " << t;
  }
}
