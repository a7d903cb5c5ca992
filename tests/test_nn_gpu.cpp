// CUDA vs CPU parity for the op layer (label gpu): MLP and GRU forward/backward at the shapes the configs use,
// Adam, and the regression task trained on the GPU. Float results agree to a stated relative tolerance
// (cuBLAS and OpenBLAS sum in different orders).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "algo/ppo.h"
#include "algo/rl2.h"
#include "host/config.h"
#include "host/train.h"
#include "kernels/philox.h"
#include "nn/adam.h"
#include "nn/distributions_batch.h"
#include "nn/gru.h"
#include "nn/mlp.h"
#include "tests/env_helpers.h"
#include "tests/gpu_guard.h"
#include "tests/gradcheck.h"
#include "tests/learner_parity.h"
#include "tests/random_vectors.h"
#include "tests/regression_task.h"

using namespace dyn;

namespace {

constexpr double kParityTol = 1e-5;  // relative L2, float, CPU vs CUDA

struct MlpRun {
  std::vector<float> y, grads, dx;
};

MlpRun run_mlp(Backend b, const MlpShape& shape, int batch, bool fused = false) {
  ParamLayout layout;
  const Mlp mlp(shape, layout, "m");
  ParamBlob<float> p(b, layout, 3);
  Buffer<float> x = Buffer<float>::copy_of(b, randn<float>(size_t(batch) * shape.sizes.front(), 4));
  Buffer<float> dy = Buffer<float>::copy_of(b, randn<float>(size_t(batch) * shape.sizes.back(), 5));
  Buffer<float> dx(b, size_t(batch) * shape.sizes.front());
  MlpWorkspace<float> ws;
  if (fused) {
    mlp_forward_fused(mlp, p.value.data(), x.data(), batch, ws);
    mlp_backward_fused(mlp, p.value.data(), p.grad.data(), x.data(), dy.data(), dx.data(), ws, false);
  } else {
    mlp.forward(b, p.value.data(), x.data(), batch, ws);
    mlp.backward(b, p.value.data(), p.grad.data(), x.data(), dy.data(), dx.data(), ws, false);
  }
  return MlpRun{ws.act.back().to_host(), p.grad.to_host(), dx.to_host()};
}

}  // namespace

class MlpParity : public ::testing::TestWithParam<int> {};

// Mlp::forward on CUDA through both of its paths (the fused kernel it dispatches to, and the GEMM path with fused
// kernels off) against the CPU.
TEST_P(MlpParity, CudaMatchesCpu) {
  DYN_REQUIRE_CUDA();
  const int width = GetParam();
  // policy/critic MLPs (2 × 128), encoder MLPs (2 × 64), decoders (2 × 32), up to 3 hidden layers, and a first
  // layer wider than the hidden width (the physics belief trunk)
  for (const MlpShape& s :
       {MlpShape{{17, width, width, 6}}, MlpShape{{40, width, width, width, 1}}, MlpShape{{128, width, width}}}) {
    for (bool fused : {true, false}) {
      set_fused_kernels(fused);
      ParamLayout layout;
      EXPECT_EQ(Mlp(s, layout, "m").forward_path<float>(Backend::cuda), fused ? OpPath::fused : OpPath::gemm);
      const MlpRun c = run_mlp(Backend::cpu, s, 1000), g = run_mlp(Backend::cuda, s, 1000);
      const std::string path = fused ? "fused/" : "gemm/";
      DYN_EXPECT_WITHIN(path + "y_rel_l2", rel_l2(g.y, c.y), kParityTol);
      DYN_EXPECT_WITHIN(path + "grads_rel_l2", rel_l2(g.grads, c.grads), kParityTol);
      DYN_EXPECT_WITHIN(path + "dx_rel_l2", rel_l2(g.dx, c.dx), kParityTol);
    }
    set_fused_kernels(true);
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, MlpParity, ::testing::Values(32, 64, 128));

class FusedMlpParity : public ::testing::TestWithParam<int> {};

TEST_P(FusedMlpParity, FusedCudaMatchesUnfusedCpu) {
  DYN_REQUIRE_CUDA();
  const int w = GetParam();
  // every shape family the configs use at this width: policy/critic and encoder (2 hidden), 3 hidden layers,
  // a square stack, tanh output, a single layer; batches that are not multiples of the 128-sample tile
  const std::vector<MlpShape> shapes = {{{17, w, w, 6}},
                                        {{w < 40 ? w : 40, w, w, w, 1}},
                                        {{w, w, w, w}},
                                        {{12, w, w, 2}, Activation::tanh, Activation::tanh},
                                        {{w / 2, 3}, Activation::relu, Activation::none}};
  for (const MlpShape& s : shapes) {
    ASSERT_TRUE(fused_mlp_backward_supported(s));
    for (int batch : {1, 1000, 4096}) {
      const MlpRun c = run_mlp(Backend::cpu, s, batch), g = run_mlp(Backend::cuda, s, batch, true);
      const std::string at = "batch" + std::to_string(batch) + "/";
      DYN_EXPECT_WITHIN(at + "y_rel_l2", rel_l2(g.y, c.y), kParityTol);
      DYN_EXPECT_WITHIN(at + "grads_rel_l2", rel_l2(g.grads, c.grads), kParityTol);
      DYN_EXPECT_WITHIN(at + "dx_rel_l2", rel_l2(g.dx, c.dx), kParityTol);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, FusedMlpParity, ::testing::Values(32, 64, 128));

class GruParity : public ::testing::TestWithParam<int> {};

// Gru::forward on CUDA through both paths of its recurrence (the fused kernel, and one GEMM per step with fused
// kernels off), null h0 included, and the backward, against the CPU.
TEST_P(GruParity, CudaMatchesCpu) {
  DYN_REQUIRE_CUDA();
  const int H = GetParam(), I = 64, T = 20, N = 256;
  std::vector<uint8_t> reset(size_t(T) * N);
  for (size_t i = 0; i < reset.size(); ++i) reset[i] = (i * 2654435761u) % 17 == 0;
  for (bool fused : {true, false})
    for (bool with_h0 : {true, false}) {
      set_fused_kernels(fused);
      std::vector<float> h[2], grads[2], dx[2];
      for (Backend b : {Backend::cpu, Backend::cuda}) {
        ParamLayout layout;
        const Gru gru(I, H, layout, "g");
        ParamBlob<float> p(b, layout, 9);
        Buffer<float> x = Buffer<float>::copy_of(b, randn<float>(size_t(T) * N * I, 1)),
                      h0 = Buffer<float>::copy_of(b, randn<float>(size_t(N) * H, 2, 0.5f));
        Buffer<float> dh = Buffer<float>::copy_of(b, randn<float>(size_t(T) * N * H, 3)), dxb(b, size_t(T) * N * I);
        Buffer<uint8_t> rb = Buffer<uint8_t>::copy_of(b, reset);
        GruWorkspace<float> ws;
        gru.forward(b, p.value.data(), x.data(), rb.data(), static_cast<const float*>(nullptr),
                    with_h0 ? h0.data() : nullptr, T, N, ws);
        gru.backward(b, p.value.data(), p.grad.data(), x.data(), rb.data(), dh.data(), 0, dxb.data(),
                     static_cast<float*>(nullptr), static_cast<float*>(nullptr), ws);
        const int k = b == Backend::cuda;
        h[k] = ws.h.to_host();
        grads[k] = p.grad.to_host();
        dx[k] = dxb.to_host();
      }
      const std::string at = std::string(fused ? "fused" : "gemm") + (with_h0 ? "/h0/" : "/zero_h0/");
      DYN_EXPECT_WITHIN(at + "h_rel_l2", rel_l2(h[1], h[0]), kParityTol);
      DYN_EXPECT_WITHIN(at + "grads_rel_l2", rel_l2(grads[1], grads[0]), 1e-4);  // sums over T·N = 5120 rows
      DYN_EXPECT_WITHIN(at + "dx_rel_l2", rel_l2(dx[1], dx[0]), kParityTol);
    }
  set_fused_kernels(true);
}

INSTANTIATE_TEST_SUITE_P(Hidden, GruParity, ::testing::Values(64, 128));

class FusedGruParity : public ::testing::TestWithParam<int> {};

TEST_P(FusedGruParity, FusedCudaMatchesUnfusedCpu) {
  DYN_REQUIRE_CUDA();
  const int H = GetParam(), I = 48, T = 24, N = 300;  // N not a multiple of the block's streams
  std::vector<uint8_t> reset(size_t(T) * N);
  for (size_t i = 0; i < reset.size(); ++i) reset[i] = (i * 2654435761u) % 13 == 0;
  const std::vector<float> x = randn<float>(size_t(T) * N * I, 1), h0 = randn<float>(size_t(N) * H, 2, 0.5f);
  const std::vector<float> inj = randn<float>(size_t(T) * N * 3 * H, 3, 0.2f), dh = randn<float>(size_t(T) * N * H, 4);
  std::vector<float> h[2], gates[2], grads[2];
  for (Backend b : {Backend::cpu, Backend::cuda}) {
    ParamLayout layout;
    const Gru gru(I, H, layout, "g");
    ParamBlob<float> p(b, layout, 9);
    Buffer<float> xb = Buffer<float>::copy_of(b, x), hb = Buffer<float>::copy_of(b, h0);
    Buffer<float> ib = Buffer<float>::copy_of(b, inj), db = Buffer<float>::copy_of(b, dh);
    Buffer<uint8_t> rb = Buffer<uint8_t>::copy_of(b, reset);
    GruWorkspace<float> ws;
    if (b == Backend::cuda)
      gru_forward_fused(gru, p.value.data(), xb.data(), rb.data(), ib.data(), hb.data(), T, N, ws);
    else
      gru.forward(b, p.value.data(), xb.data(), rb.data(), ib.data(), hb.data(), T, N, ws);
    // the unfused backward runs on the fused forward's workspace
    gru.backward(b, p.value.data(), p.grad.data(), xb.data(), rb.data(), db.data(), 0, static_cast<float*>(nullptr),
                 static_cast<float*>(nullptr), static_cast<float*>(nullptr), ws);
    const int k = b == Backend::cuda;
    h[k] = ws.h.to_host();
    gates[k] = ws.gates.to_host();
    grads[k] = p.grad.to_host();
  }
  DYN_EXPECT_WITHIN("h_rel_l2", rel_l2(h[1], h[0]), kParityTol);
  DYN_EXPECT_WITHIN("gates_rel_l2", rel_l2(gates[1], gates[0]), kParityTol);
  DYN_EXPECT_WITHIN("grads_rel_l2", rel_l2(grads[1], grads[0]), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Hidden, FusedGruParity, ::testing::Values(64, 128));

TEST(AdamParity, CudaStepMatchesCpu) {
  DYN_REQUIRE_CUDA();
  const size_t n = 100000;
  const std::vector<float> p0 = randn<float>(n, 1), g0 = randn<float>(n, 2, 0.01f);
  std::vector<float> out[2];
  for (Backend b : {Backend::cpu, Backend::cuda}) {
    Buffer<float> p = Buffer<float>::copy_of(b, p0), g = Buffer<float>::copy_of(b, g0);
    Adam<float> adam(b, n, AdamConfig{});
    for (int s = 0; s < 3; ++s) adam.step(p.data(), g.data());
    out[b == Backend::cuda] = p.to_host();
  }
  DYN_EXPECT_WITHIN("params_rel_l2", rel_l2(out[1], out[0]), 1e-6);
}

TEST(AdamParity, TrainsTinyRegressionOnCuda) {
  DYN_REQUIRE_CUDA();
  const RegressionResult r = train_regression(Backend::cuda, 2000);
  EXPECT_LT(r.final_loss, 0.01) << "initial " << r.initial_loss;
}

TEST(DistributionsParity, CudaMatchesCpu) {
  DYN_REQUIRE_CUDA();
  const int n = 5000, a = 5, d = 16;
  const std::vector<float> z = randn<float>(size_t(n) * a, 1), mu1 = randn<float>(size_t(n) * d, 2),
                           lv1 = randn<float>(size_t(n) * d, 3, 0.5f), mu2 = randn<float>(size_t(n) * d, 4),
                           lv2 = randn<float>(size_t(n) * d, 5, 0.5f), g = randn<float>(n, 6),
                           ls = randn<float>(d, 7, 0.3f);
  std::vector<int32_t> act(n);
  for (int i = 0; i < n; ++i) act[i] = (i * 7) % a;
  std::vector<float> out[2][6];
  std::vector<int32_t> sampled[2];
  for (Backend b : {Backend::cpu, Backend::cuda}) {
    const int k = b == Backend::cuda;
    auto zb = Buffer<float>::copy_of(b, z), m1 = Buffer<float>::copy_of(b, mu1), l1 = Buffer<float>::copy_of(b, lv1),
         m2 = Buffer<float>::copy_of(b, mu2), l2 = Buffer<float>::copy_of(b, lv2), gb = Buffer<float>::copy_of(b, g),
         lsb = Buffer<float>::copy_of(b, ls);
    auto ab = Buffer<int32_t>::copy_of(b, act);
    Buffer<float> lp(b, n), ent(b, n), dz(b, z.size()), kl(b, n), dm1(b, mu1.size()), dl1(b, mu1.size()), glp(b, n);
    Buffer<int32_t> s(b, n);
    categorical_log_prob_entropy(b, zb.data(), ab.data(), lp.data(), ent.data(), n, a);
    categorical_backward(b, zb.data(), ab.data(), gb.data(), gb.data(), dz.data(), n, a);
    categorical_act(b, zb.data(), false, 3, 9, s.data(), n, a);
    gaussian_kl_batch(b, m1.data(), l1.data(), m2.data(), l2.data(), kl.data(), n, d);
    gaussian_kl_batch_backward(b, m1.data(), l1.data(), m2.data(), l2.data(), gb.data(), dm1.data(), dl1.data(),
                               static_cast<float*>(nullptr), static_cast<float*>(nullptr), n, d);
    gaussian_log_prob_batch(b, m1.data(), lsb.data(), m2.data(), glp.data(), n, d);
    out[k][0] = lp.to_host();
    out[k][1] = ent.to_host();
    out[k][2] = dz.to_host();
    out[k][3] = kl.to_host();
    out[k][4] = dm1.to_host();
    out[k][5] = glp.to_host();
    sampled[k] = s.to_host();
  }
  for (int j = 0; j < 6; ++j)
    DYN_EXPECT_WITHIN("output" + std::to_string(j) + "_rel_l2", rel_l2(out[1][j], out[0][j]), kParityTol);
  int differ = 0;
  for (int i = 0; i < n; ++i) differ += sampled[0][i] != sampled[1][i];
  EXPECT_LE(differ, 2) << "same Philox uniforms; only a CDF tie at float rounding may differ";
}

TEST(PpoParity, IterationsMatchCpu) {
  DYN_REQUIRE_CUDA();
  EnvConfig env = default_env_config("gridworld", 5);
  PpoLearner cpu(Backend::cpu, env, 256, PpoConfig{}), gpu(Backend::cuda, env, 256, PpoConfig{});
  dyn_test::expect_iterations_match_cpu(cpu, gpu, 4, 60, 256, env.session.horizon, 1.1);  // rewards +1 / −0.1
}

TEST(Rl2Parity, IterationsMatchCpu) {
  DYN_REQUIRE_CUDA();
  EnvConfig env = default_env_config("gridworld", 6);
  Rl2Learner cpu(Backend::cpu, env, 64, PpoConfig{}), gpu(Backend::cuda, env, 64, PpoConfig{});
  dyn_test::expect_iterations_match_cpu(cpu, gpu, 4, 60, 64, env.session.horizon, 1.1);
}

namespace {

// Graphed and eager learners on CUDA with `rollout_steps` per iteration: a rollout of half the horizon gives two
// collect graphs, one per phase, besides the advantages and the update.
template <class Learner>
void check_graph_replay(int64_t envs, int rollout_steps, int iterations) {
  EnvConfig env = default_env_config("gridworld", 8);
  PpoConfig graphed_cfg, eager_cfg;
  graphed_cfg.rollout_steps = eager_cfg.rollout_steps = rollout_steps;
  eager_cfg.cuda_graphs = false;
  Learner graphed(Backend::cuda, env, envs, graphed_cfg), eager(Backend::cuda, env, envs, eager_cfg);
  const int phases = env.session.horizon / rollout_steps;
  dyn_test::expect_graphs_match_eager(graphed, eager, iterations, phases + 2);
  const EvalStats g = graphed.evaluate(256, 2, 99), e = eager.evaluate(256, 2, 99);
  DYN_EXPECT_WITHIN("eval_return_abs_diff", std::fabs(g.mean_return - e.mean_return),
                    1e-6 * std::fabs(e.mean_return) + 1e-9);
}

}  // namespace

TEST(GraphReplay, PpoMatchesEager) {
  DYN_REQUIRE_CUDA();
  check_graph_replay<PpoLearner>(512, 60, 4);
}

TEST(GraphReplay, PpoCollectsInTwoHorizonPhases) {
  DYN_REQUIRE_CUDA();
  check_graph_replay<PpoLearner>(512, 30, 6);
}

TEST(GraphReplay, Rl2CollectsInTwoHorizonPhases) {
  DYN_REQUIRE_CUDA();
  check_graph_replay<Rl2Learner>(64, 30, 6);
}

TEST(GaussianHeadParity, CudaMatchesCpu) {
  DYN_REQUIRE_CUDA();
  const int n = 4096, a = 6;
  ParamLayout layout;
  const PolicyHead head(continuous_spec(17, a, 400), layout, "actor");
  std::vector<float> params(layout.total());
  const std::vector<float> ls = randn<float>(a, 11, 0.3f);
  std::copy(ls.begin(), ls.end(), params.begin() + head.log_std_offset());
  const std::vector<float> mu = randn<float>(size_t(n) * a, 12), x = randn<float>(size_t(n) * a, 13, 1.5f),
                           g_logp = randn<float>(n, 14), g_ent = randn<float>(n, 15);
  std::vector<float> out[2][6];
  for (Backend b : {Backend::cpu, Backend::cuda}) {
    const int k = b == Backend::cuda;
    auto pb = Buffer<float>::copy_of(b, params), mub = Buffer<float>::copy_of(b, mu), xb = Buffer<float>::copy_of(b, x),
         glb = Buffer<float>::copy_of(b, g_logp), geb = Buffer<float>::copy_of(b, g_ent);
    Buffer<float> logp(b, n), ent(b, n), dout(b, mu.size()), scratch(b, mu.size()), grads(b, layout.total()),
        sample(b, mu.size()), mode(b, mu.size());
    grads.zero();
    head.log_prob_entropy(b, pb.data(), mub.data(), ActionBatch{nullptr, xb.data()}, logp.data(), ent.data(), n);
    head.backward(b, pb.data(), grads.data(), mub.data(), ActionBatch{nullptr, xb.data()}, glb.data(), geb.data(),
                  dout.data(), scratch.data(), n, false);
    head.act(b, pb.data(), mub.data(), false, {21}, 7, ActionBuffers{nullptr, sample.data()}, n);
    head.act(b, pb.data(), mub.data(), true, {21}, 7, ActionBuffers{nullptr, mode.data()}, n);
    out[k][0] = logp.to_host();
    out[k][1] = ent.to_host();
    out[k][2] = dout.to_host();
    out[k][3] = grads.to_host();
    out[k][4] = sample.to_host();
    out[k][5] = mode.to_host();
  }
  const char* names[6] = {"log_prob", "entropy", "d_mu", "log_std_grad", "sample", "mode"};
  for (int j = 0; j < 6; ++j)
    DYN_EXPECT_WITHIN(std::string("gaussian_") + names[j] + "_rel_l2", rel_l2(out[1][j], out[0][j]), kParityTol);
}

namespace {

// A small physics config for the learner parity tests: 64 envs, 40-step episodes of halfcheetah_vel (continuous
// actions, the Gaussian head), rollouts of 20 steps, belief steps from the second iteration.
Config physics_parity_config(const std::string& algo) {
  Config c = Config::builtin("halfcheetah_vel");
  const std::vector<std::pair<std::string, std::string>> sets = {{"run.algo", algo},
                                                                 {"run.envs", "64"},
                                                                 {"run.seed", "9"},
                                                                 {"env.horizon", "40"},
                                                                 {"train.rollout_steps", "20"},
                                                                 {"belief.batch_episodes", "16"},
                                                                 {"belief.elbo_samples", "10"},
                                                                 {"belief.decode_samples", "10"},
                                                                 {"contrabar.batch_episodes", "16"}};
  for (const auto& [k, v] : sets) c.set_from_string(k, v, "test");
  c.validate();
  return c;
}

}  // namespace

// Every learner on a physics env, CPU vs CUDA over four iterations. Continuous actions do not flip: the CUDA sample
// differs from the CPU's by the rounding of μ and σ, but halfcheetah's contacts amplify that over 80 steps, so the
// returns are compared with a loose relative bound (reported beside its measured value for the first device run);
// the losses must agree to 5%.
TEST(PhysicsLearnerParity, EveryLearnerMatchesCpu) {
  DYN_REQUIRE_CUDA();
  for (const std::string algo : {"ppo", "oracle", "rl2", "dynamite", "varibad", "contrabar"}) {
    SCOPED_TRACE(algo);
    const Config c = physics_parity_config(algo);
    const std::unique_ptr<Learner> cpu = make_learner(c, Backend::cpu), gpu = make_learner(c, Backend::cuda);
    for (int it = 0; it < 4; ++it) {
      const IterationStats x = cpu->iterate(), y = gpu->iterate();
      const std::string at = algo + "/it" + std::to_string(it) + "/";
      EXPECT_EQ(x.frames, y.frames);
      EXPECT_EQ(x.episodes, y.episodes) << at << "episodes end at the time limit on both";
      if (x.episodes > 0)
        DYN_EXPECT_WITHIN(at + "train_return_rel_diff",
                          std::fabs(y.train_return - x.train_return) / std::fabs(x.train_return), 5e-2);
      DYN_EXPECT_WITHIN(at + "value_loss_rel_diff", std::fabs(y.value_loss - x.value_loss) / std::fabs(x.value_loss),
                        5e-2);
      DYN_EXPECT_WITHIN(at + "entropy_abs_diff", std::fabs(y.entropy - x.entropy), 1e-3 * std::fabs(x.entropy) + 1e-4);
      const std::string term = algo == "contrabar" ? "cpc_loss" : "belief_loss";
      const double bc = x.metric(term), bg = y.metric(term);
      EXPECT_EQ(std::isnan(bc), std::isnan(bg)) << at;
      if (!std::isnan(bc)) DYN_EXPECT_WITHIN(at + term + "_rel_diff", std::fabs(bg - bc) / std::fabs(bc), 5e-2);
    }
    const EvalStats ec = cpu->evaluate(64, 1, 3), eg = gpu->evaluate(64, 1, 3);
    DYN_EXPECT_WITHIN(algo + "/eval_return_rel_diff",
                      std::fabs(eg.mean_return - ec.mean_return) / std::fabs(ec.mean_return), 5e-2);
  }
}

// Graph replay vs eager on a physics env, for every learner, with two horizon phases per episode: the same kernels
// on the same device, so the figures agree to the rounding of a few atomics.
TEST(GraphReplay, PhysicsLearnersMatchEager) {
  DYN_REQUIRE_CUDA();
  for (const std::string algo : {"ppo", "oracle", "rl2", "dynamite", "varibad", "contrabar"}) {
    SCOPED_TRACE(algo);
    Config graphed_cfg = physics_parity_config(algo), eager_cfg = physics_parity_config(algo);
    eager_cfg.set_from_string("run.cuda_graphs", "false", "test");
    const std::unique_ptr<Learner> graphed = make_learner(graphed_cfg, Backend::cuda),
                                   eager = make_learner(eager_cfg, Backend::cuda);
    dyn_test::expect_graphs_match_eager(*graphed, *eager, 6, 2 + 2, {"belief_loss", "cpc_loss"});
  }
}
