// The continuous-action policy head (SPEC §4): the diagonal-Gaussian PPO loss' gradients, log-std included, against
// finite differences in double; the float PolicyHead (log-probabilities, entropy, d loss / d μ and the log-std's
// column-sum gradient, accumulated or not) against those double rows; its actions: the mode is μ, samples are
// unclipped draws of N(μ, σ²) and reproducible per (seed, step).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "algo/policy_head.h"
#include "algo/ppo_loss.h"
#include "kernels/buffer.h"
#include "nn/distributions.h"
#include "nn/params.h"
#include "tests/env_helpers.h"
#include "tests/gradcheck.h"
#include "tests/random_vectors.h"

using namespace dyn;

namespace {

// The PPO objective of a Gaussian policy over means mu [n, A] and a shared log-std [A]:
// mean_i [policy_i + c_v · value_i − c_e · entropy], with its analytic gradients into dmu, dls, dv.
struct GaussianPpo {
  int n = 0, a = 0;
  double clip = 0.2, cv = 0.5, ce = 0.05;
  std::vector<double> old_logp, x, adv, ret, old_v;

  double loss(const std::vector<double>& mu, const std::vector<double>& ls, const std::vector<double>& v) const {
    double l = 0;
    for (int i = 0; i < n; ++i) {
      const double lp = gaussian_log_prob(mu.data() + i * a, ls.data(), x.data() + i * a, a);
      const PpoSample<double> s = ppo_sample(lp, old_logp[i], adv[i], v[i], old_v[i], ret[i], clip);
      l += (s.policy + cv * s.value - ce * gaussian_entropy(ls.data(), a)) / n;
    }
    return l;
  }
  int grads(const std::vector<double>& mu, const std::vector<double>& ls, const std::vector<double>& v,
            std::vector<double>& dmu, std::vector<double>& dls, std::vector<double>& dv) const {
    dmu.assign(mu.size(), 0.0);
    dls.assign(a, 0.0);
    dv.assign(n, 0.0);
    int clipped = 0;
    for (int i = 0; i < n; ++i) {
      const double lp = gaussian_log_prob(mu.data() + i * a, ls.data(), x.data() + i * a, a);
      const PpoSample<double> s = ppo_sample(lp, old_logp[i], adv[i], v[i], old_v[i], ret[i], clip);
      clipped += s.clipped;
      gaussian_log_prob_grad(mu.data() + i * a, ls.data(), x.data() + i * a, a, s.d_logp / n, dmu.data() + i * a,
                             dls.data(), static_cast<double*>(nullptr));
      for (int k = 0; k < a; ++k) dls[k] -= ce / n;  // d entropy / d log σ_k = 1
      dv[i] = cv * s.d_value / n;
    }
    return clipped;
  }
};

}  // namespace

TEST(GaussianPpoLoss, GradientsInDoubleIncludingLogStd) {
  const int n = 32, a = 3;
  GaussianPpo p;
  p.n = n;
  p.a = a;
  std::vector<double> mu = randn(size_t(n) * a, 41, 0.5), ls = randn(a, 42, 0.3), v = randn(n, 43);
  // the rollout's policy: a perturbed copy; the actions were sampled from it (unclipped)
  const std::vector<double> old_mu_shift = randn(size_t(n) * a, 44, 0.4), eps = randn(size_t(n) * a, 45);
  std::vector<double> old_mu(mu.size());
  p.x.resize(mu.size());
  for (size_t k = 0; k < mu.size(); ++k) {
    old_mu[k] = mu[k] + old_mu_shift[k];
    p.x[k] = old_mu[k] + std::exp(ls[k % a]) * eps[k] * 1.5;  // some beyond ±1: the head never clips
  }
  p.old_logp.resize(n);
  for (int i = 0; i < n; ++i)
    p.old_logp[i] = gaussian_log_prob(old_mu.data() + i * a, ls.data(), p.x.data() + i * a, a);
  p.adv = randn(n, 46);
  p.ret = randn(n, 47);
  p.old_v = v;
  for (int i = 0; i < n; ++i) p.old_v[i] += (i % 3 == 0) ? 0.6 : 0.05;  // some value predictions clipped
  std::vector<double> dmu, dls, dv;
  const int clipped = p.grads(mu, ls, v, dmu, dls, dv);
  EXPECT_GT(clipped, 0) << "the example must exercise ratio clipping";
  EXPECT_LT(clipped, n);
  auto loss = [&] { return p.loss(mu, ls, v); };
  EXPECT_LT(gradcheck_rel_error(mu, dmu, loss), kGradTol);
  EXPECT_LT(gradcheck_rel_error(ls, dls, loss), kGradTol);
  EXPECT_LT(gradcheck_rel_error(v, dv, loss), kGradTol);
  double norm = 0;
  for (double g : dls) norm += g * g;
  EXPECT_GT(norm, 1e-6) << "the log-std must get a gradient";
}

TEST(PolicyHead, FloatGaussianMatchesDoubleRows) {
  const int n = 64, a = 6;
  ParamLayout layout;
  layout.add("other", {5}, Init::zeros);  // the log-std is a view at an offset of a larger blob
  const PolicyHead head(continuous_spec(4, a), layout, "actor");
  ASSERT_FALSE(head.discrete());
  ASSERT_EQ(head.out_width(), a);
  const std::vector<double> mu = randn(size_t(n) * a, 51, 0.7), ls = randn(a, 52, 0.3),
                            x = randn(size_t(n) * a, 53, 1.2), g_logp = randn(n, 54), g_ent = randn(n, 55);
  std::vector<float> params(layout.total(), 0.0f);
  for (int k = 0; k < a; ++k) params[head.log_std_offset() + k] = float(ls[k]);
  auto to_f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  const Backend b = Backend::cpu;
  auto pb = Buffer<float>::copy_of(b, params), mub = Buffer<float>::copy_of(b, to_f(mu)),
       xb = Buffer<float>::copy_of(b, to_f(x)), glb = Buffer<float>::copy_of(b, to_f(g_logp)),
       geb = Buffer<float>::copy_of(b, to_f(g_ent));
  Buffer<float> logp(b, n), ent(b, n), dout(b, size_t(n) * a), scratch(b, size_t(n) * a), grads(b, layout.total());
  grads.zero();
  const ActionBatch act{nullptr, xb.data()};
  head.log_prob_entropy(b, pb.data(), mub.data(), act, logp.data(), ent.data(), n);
  head.backward(b, pb.data(), grads.data(), mub.data(), act, glb.data(), geb.data(), dout.data(), scratch.data(), n,
                false);
  // the double reference: loss = Σ_i g_logp_i · log π_i + g_ent_i · H
  std::vector<double> ref_logp(n), ref_dmu(mu.size(), 0.0), ref_dls(a, 0.0);
  for (int i = 0; i < n; ++i) {
    ref_logp[i] = gaussian_log_prob(mu.data() + i * a, ls.data(), x.data() + i * a, a);
    gaussian_log_prob_grad(mu.data() + i * a, ls.data(), x.data() + i * a, a, g_logp[i], ref_dmu.data() + i * a,
                           ref_dls.data(), static_cast<double*>(nullptr));
    for (int k = 0; k < a; ++k) ref_dls[k] += g_ent[i];
  }
  EXPECT_LT(rel_l2(logp.to_host(), ref_logp), 1e-6);
  const std::vector<float> eh = ent.to_host();
  for (int i = 0; i < n; ++i) EXPECT_NEAR(eh[i], gaussian_entropy(ls.data(), a), 1e-5);
  EXPECT_LT(rel_l2(dout.to_host(), ref_dmu), 1e-6);
  const std::vector<float> gh = grads.to_host();
  const std::vector<float> g_ls(gh.begin() + head.log_std_offset(), gh.begin() + head.log_std_offset() + a);
  EXPECT_LT(rel_l2(g_ls, ref_dls), 1e-5);
  for (size_t k = 0; k < head.log_std_offset(); ++k) EXPECT_EQ(gh[k], 0.0f) << "only the log-std's view is written";
  // accumulate: added to what is there (the actor's other gradients share the blob)
  head.backward(b, pb.data(), grads.data(), mub.data(), act, glb.data(), geb.data(), dout.data(), scratch.data(), n,
                true);
  const std::vector<float> gh2 = grads.to_host();
  for (int k = 0; k < a; ++k)
    EXPECT_NEAR(gh2[head.log_std_offset() + k], 2.0 * ref_dls[k], 1e-4 * (1 + std::fabs(ref_dls[k])));
}

TEST(PolicyHead, GaussianModeIsTheMeanAndSamplesAreUnclipped) {
  const int n = 4096, a = 2;
  ParamLayout layout;
  const PolicyHead head(continuous_spec(4, a), layout, "actor");
  std::vector<float> params(layout.total(), 0.0f);
  const float log_std[a] = {std::log(2.0f), std::log(0.5f)};
  for (int k = 0; k < a; ++k) params[head.log_std_offset() + k] = log_std[k];
  std::vector<float> mu(size_t(n) * a);
  for (int i = 0; i < n; ++i) {
    mu[i * a] = 0.9f;
    mu[i * a + 1] = -0.3f;
  }
  const Backend b = Backend::cpu;
  auto pb = Buffer<float>::copy_of(b, params), mub = Buffer<float>::copy_of(b, mu);
  Buffer<float> act(b, mu.size()), again(b, mu.size());
  head.act(b, pb.data(), mub.data(), true, {7}, 3, ActionBuffers{nullptr, act.data()}, n);
  EXPECT_EQ(act.to_host(), mu);
  head.act(b, pb.data(), mub.data(), false, {7}, 3, ActionBuffers{nullptr, act.data()}, n);
  head.act(b, pb.data(), mub.data(), false, {7}, 3, ActionBuffers{nullptr, again.data()}, n);
  const std::vector<float> s = act.to_host();
  EXPECT_EQ(s, again.to_host()) << "same (seed, step): same draws";
  double mean[a] = {0, 0}, var[a] = {0, 0};
  int beyond = 0;
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < a; ++k) {
      mean[k] += s[i * a + k] / n;
      beyond += std::fabs(s[i * a + k]) > 1.0f;
    }
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < a; ++k) var[k] += (s[i * a + k] - mean[k]) * (s[i * a + k] - mean[k]) / (n - 1);
  for (int k = 0; k < a; ++k) {
    const double sd = std::exp(double(log_std[k]));
    EXPECT_NEAR(mean[k], mu[k], 4 * sd / std::sqrt(double(n)));
    EXPECT_NEAR(std::sqrt(var[k]), sd, 0.05 * sd);
  }
  EXPECT_GT(beyond, n / 4) << "the head stores the unclipped sample; the env clips";
  head.act(b, pb.data(), mub.data(), false, {7}, 4, ActionBuffers{nullptr, again.data()}, n);
  EXPECT_NE(s, again.to_host()) << "another step: other draws";
}
