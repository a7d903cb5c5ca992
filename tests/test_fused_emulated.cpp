// The fused MLP and GRU kernels, run on the host through tests/cuda_emulation.h (one thread per CUDA thread),
// against the unfused CPU reference at the shapes the learners use. The forward launches are the very plans the
// ops' dispatch builds (Mlp::fused_forward_plan, Gru::fused_recur_plan), so row offsets, null h0 / reset and the
// choice of kernel are checked here; which path each op takes on each backend is checked too. tests/test_nn_gpu.cpp
// checks the real thing on a device.
#include <gtest/gtest.h>

#include <vector>

#include "algo/belief_model.h"
#include "nn/gru.h"
#include "nn/mlp.h"
#include "tests/gradcheck.h"
#include "tests/random_vectors.h"
// after the CUDA runtime headers:
#include "tests/cuda_emulation.h"

namespace dyn::fused_mlp {
float fused_smem[(128 + 128) * 129];  // the kernels' dynamic shared memory, one block at a time
}
namespace dyn::fused_gru {
float fused_smem[(3 * 128 + 32) * 129];
}

#include "kernels/fused_gru_kernels.cuh"
#include "kernels/fused_mlp_kernels.cuh"

using namespace dyn;

namespace {

// Relative L2, float: the kernels use fmaf and another summation order. Measured at most 2.6e-7 (97 checks).
constexpr double kTol = 1e-5;

// Runs a forward plan as launch_fused_mlp_forward would.
void emulate(const FusedMlpPlan& p) {
  using namespace fused_mlp;
  const int key = p.width * 1000 + p.in_width;
  if (key == 32032)
    emulate_launch(p.blocks, kThreads, fused_mlp_forward_kernel<32, 32>, p.layers, p.x, p.rows);
  else if (key == 32064)
    emulate_launch(p.blocks, kThreads, fused_mlp_forward_kernel<32, 64>, p.layers, p.x, p.rows);
  else if (key == 32128)
    emulate_launch(p.blocks, kThreads, fused_mlp_forward_kernel<32, 128>, p.layers, p.x, p.rows);
  else if (key == 64064)
    emulate_launch(p.blocks, kThreads, fused_mlp_forward_kernel<64, 64>, p.layers, p.x, p.rows);
  else if (key == 64128)
    emulate_launch(p.blocks, kThreads, fused_mlp_forward_kernel<64, 128>, p.layers, p.x, p.rows);
  else if (key == 128128)
    emulate_launch(p.blocks, kThreads, fused_mlp_forward_kernel<128, 128>, p.layers, p.x, p.rows);
  else
    FAIL() << "no kernel for widths " << p.width << ", " << p.in_width;
}

// Runs a recurrence plan as launch_fused_gru would.
void emulate(const FusedGruPlan& p) {
  using namespace fused_gru;
  if (p.hidden == 64)
    emulate_launch(p.blocks, kThreads, fused_gru_forward_kernel<64>, p.w_hh, p.b_hh, p.gi, p.reset, p.h0, p.steps,
                   p.streams, p.out);
  else
    emulate_launch(p.blocks, kThreads, fused_gru_forward_kernel<128>, p.w_hh, p.b_hh, p.gi, p.reset, p.h0, p.steps,
                   p.streams, p.out);
}

std::vector<float> init_params(const ParamLayout& layout, uint32_t seed) {
  std::vector<float> p;
  initialize_params(layout, seed, p);
  for (size_t i = 0; i < p.size(); ++i) p[i] += 0.01f * float(i % 7);  // non-zero biases
  return p;
}

// Every layer's output of the unfused CPU forward (all rows), and of the fused plans over rows split at `split`
// (two launches into one workspace, as a recurrent caller's forward_rows does).
void check_forward(const MlpShape& s, int batch, int split) {
  ASSERT_TRUE(fused_mlp_supported(s));
  ParamLayout layout;
  const Mlp mlp(s, layout, "m");
  const auto pb = Buffer<float>::copy_of(Backend::cpu, init_params(layout, 3));
  const auto xb = Buffer<float>::copy_of(Backend::cpu, randn<float>(size_t(batch) * s.sizes.front(), 4));
  MlpWorkspace<float> ref, emu;
  mlp.forward(Backend::cpu, pb.data(), xb.data(), batch, ref);
  emu.reserve(Backend::cpu, s, batch);
  emulate(mlp.fused_forward_plan(pb.data(), xb.data(), 0, split, emu));
  emulate(mlp.fused_forward_plan(pb.data(), xb.data(), split, batch - split, emu));
  for (int l = 0; l < s.layers(); ++l)
    EXPECT_LT(rel_l2(emu.act[l].to_host(), ref.act[l].to_host()), kTol) << "layer " << l;
}

struct Grads {
  std::vector<float> grads, dx;
};

// The fused backward kernel plus one GEMM per layer for the weights (as mlp_backward_fused) vs the unfused CPU.
void check_backward(const MlpShape& s, int batch) {
  ASSERT_TRUE(fused_mlp_backward_supported(s));
  ParamLayout layout;
  const Mlp mlp(s, layout, "m");
  const std::vector<float> p = init_params(layout, 3);
  const auto pb = Buffer<float>::copy_of(Backend::cpu, p);
  const auto xb = Buffer<float>::copy_of(Backend::cpu, randn<float>(size_t(batch) * s.sizes.front(), 4));
  const auto dyb = Buffer<float>::copy_of(Backend::cpu, randn<float>(size_t(batch) * s.sizes.back(), 5));
  Grads out[2];
  for (int fused = 0; fused < 2; ++fused) {
    Buffer<float> g(Backend::cpu, p.size()), dx(Backend::cpu, size_t(batch) * s.sizes.front());
    MlpWorkspace<float> ws;
    mlp.forward(Backend::cpu, pb.data(), xb.data(), batch, ws);
    if (!fused) {
      mlp.backward(Backend::cpu, pb.data(), g.data(), xb.data(), dyb.data(), dx.data(), ws, false);
    } else {
      for (int l = 0; l < s.layers(); ++l) ws.dpre.emplace_back(Backend::cpu, size_t(batch) * s.sizes[l + 1]);
      FusedMlpPlan plan = mlp.fused_forward_plan(pb.data(), xb.data(), 0, batch, ws);
      for (int l = 0; l < s.layers(); ++l) plan.layers.dpre[l] = ws.dpre[l].data();
      emulate_launch(plan.blocks, fused_mlp::kThreads,
                     plan.width == 32   ? fused_mlp::fused_mlp_backward_kernel<32>
                     : plan.width == 64 ? fused_mlp::fused_mlp_backward_kernel<64>
                                        : fused_mlp::fused_mlp_backward_kernel<128>,
                     plan.layers, static_cast<const float*>(dyb.data()), dx.data(), false, batch);
      for (int l = 0; l < s.layers(); ++l)
        linear_backward(Backend::cpu, l == 0 ? xb.data() : ws.act[l - 1].data(), pb.data() + mlp.weight_offset(l),
                        ws.dpre[l].data(), static_cast<float*>(nullptr), g.data() + mlp.weight_offset(l),
                        g.data() + mlp.bias_offset(l), batch, s.sizes[l], s.sizes[l + 1], false);
    }
    out[fused] = {g.to_host(), dx.to_host()};
  }
  EXPECT_LT(rel_l2(out[1].grads, out[0].grads), kTol);
  EXPECT_LT(rel_l2(out[1].dx, out[0].dx), kTol);
}

// The learners' MLPs (SPEC §3–4): gridworld and physics belief models, PPO's actor and critic, RL²'s embedding.
std::vector<MlpShape> learner_mlp_shapes() {
  std::vector<MlpShape> shapes;
  BeliefShape grid, physics;
  physics.obs = 17;  // halfcheetah
  physics.actions = 6;
  physics.embed = 32;
  physics.hidden = 128;
  physics.latent = 16;
  for (const BeliefShape& bs : {grid, physics}) {
    ParamLayout layout;
    const BeliefModel<float> m(Backend::cpu, bs, layout);
    for (const Mlp* mlp : {&m.emb_s, &m.emb_a, &m.emb_r, &m.trunk, &m.heads, &m.prior, &m.decoder})
      shapes.push_back(mlp->shape());
    // PPO on [s, μ, log σ²]: actor and critic 2 × 128 (algo/ppo_core.cu)
    shapes.push_back({{bs.obs + 2 * bs.latent, 128, 128, bs.actions}});
    shapes.push_back({{bs.obs + 2 * bs.latent, 128, 128, 1}});
  }
  shapes.push_back({{12, 24}, Activation::relu, Activation::relu});  // RL²'s embedding of [s, a, r]
  shapes.push_back({{64, 128, 128, 5}});                             // RL²'s actor on the GRU state
  return shapes;
}

std::string shape_name(const MlpShape& s) {
  std::string name;
  for (int n : s.sizes) name += std::to_string(n) + " ";
  return name;
}

}  // namespace

TEST(FusedDispatch, LearnersMlpsTakeTheFusedKernelOnCudaOnly) {
  for (const MlpShape& s : learner_mlp_shapes()) {
    ParamLayout layout;
    const Mlp mlp(s, layout, "m");
    EXPECT_EQ(mlp.forward_path<float>(Backend::cuda), OpPath::fused) << shape_name(s);
    EXPECT_EQ(mlp.forward_path<float>(Backend::cpu), OpPath::gemm) << shape_name(s);
    EXPECT_EQ(mlp.forward_path<double>(Backend::cuda), OpPath::gemm) << shape_name(s);  // the kernels are float
    set_fused_kernels(false);
    EXPECT_EQ(mlp.forward_path<float>(Backend::cuda), OpPath::gemm) << shape_name(s);
    set_fused_kernels(true);
  }
}

TEST(FusedDispatch, ShapesWithoutAKernelTakeTheGemmPath) {
  for (const MlpShape& s : {MlpShape{{16, 256, 256, 5}},            // wider than 128
                            MlpShape{{16, 64, 128, 1}},             // hidden widths differ
                            MlpShape{{200, 64, 64}},                // input wider than 128
                            MlpShape{{16, 32, 32, 64}},             // output wider than the hidden width
                            MlpShape{{16, 32, 32, 32, 32, 32}}}) {  // five layers
    ParamLayout layout;
    const Mlp mlp(s, layout, "m");
    EXPECT_EQ(mlp.forward_path<float>(Backend::cuda), OpPath::gemm) << shape_name(s);
  }
}

TEST(FusedDispatch, GruTakesTheFusedKernelForHidden64And128) {
  for (int hidden : {64, 128, 32, 96}) {
    ParamLayout layout;
    const Gru gru(24, hidden, layout, "g");
    const OpPath want = hidden == 64 || hidden == 128 ? OpPath::fused : OpPath::gemm;
    EXPECT_EQ(gru.recur_path<float>(Backend::cuda), want) << hidden;
    EXPECT_EQ(gru.recur_path<float>(Backend::cpu), OpPath::gemm) << hidden;
    EXPECT_EQ(gru.recur_path<double>(Backend::cuda), OpPath::gemm) << hidden;
  }
}

TEST(FusedMlpEmulated, ForwardAtTheLearnersShapes) {
  for (const MlpShape& s : learner_mlp_shapes()) check_forward(s, 200, 77);  // rows split inside a tile
}

TEST(FusedMlpEmulated, ForwardWidthsAndDepths) {
  check_forward({{17, 32, 32, 6}}, 130, 130);
  check_forward({{20, 5}}, 64, 1);                 // a single layer
  check_forward({{40, 64, 64, 64, 1}}, 200, 128);  // 3 hidden layers
  check_forward({{12, 64, 64, 2}, Activation::tanh, Activation::tanh}, 129, 0);
  check_forward({{12, 32, 32, 2}, Activation::elu, Activation::elu}, 129, 0);
  check_forward({{100, 32, 32, 1}}, 140, 40);  // input wider than the hidden width
  check_forward({{17, 128, 128, 6}}, 300, 150);
}

TEST(FusedMlpEmulated, Backward) {
  check_backward({{17, 32, 32, 6}}, 130);
  check_backward({{20, 5}}, 64);
  check_backward({{40, 64, 64, 64, 1}}, 200);
  check_backward({{12, 64, 64, 2}, Activation::tanh, Activation::tanh}, 129);
  check_backward({{12, 32, 32, 2}, Activation::elu, Activation::elu}, 129);
  check_backward({{17, 128, 128, 6}}, 300);
}

namespace {

// The fused recurrence (through Gru::fused_recur_plan, steps split at `split`) against Gru::forward on the CPU,
// with or without h0 and the reset mask.
template <int H>
void check_gru(int steps, int batch, bool with_h0, bool with_reset, int split) {
  const int I = 24;
  ParamLayout layout;
  const Gru gru(I, H, layout, "g");
  const auto pb = Buffer<float>::copy_of(Backend::cpu, init_params(layout, 9));
  std::vector<uint8_t> reset(size_t(steps) * batch);
  for (size_t i = 0; i < reset.size(); ++i) reset[i] = (i * 2654435761u) % 11 == 0;
  const auto xb = Buffer<float>::copy_of(Backend::cpu, randn<float>(size_t(steps) * batch * I, 1));
  const auto hb = Buffer<float>::copy_of(Backend::cpu, randn<float>(size_t(batch) * H, 2, 0.5));
  const auto rb = Buffer<uint8_t>::copy_of(Backend::cpu, reset);
  const float* h0 = with_h0 ? hb.data() : nullptr;
  const uint8_t* rs = with_reset ? rb.data() : nullptr;
  GruWorkspace<float> ref, emu;
  gru.forward(Backend::cpu, pb.data(), xb.data(), rs, static_cast<const float*>(nullptr), h0, steps, batch, ref);
  emu.reserve(Backend::cpu, steps, batch, H);
  gru.project_input(Backend::cpu, pb.data(), xb.data(), 0, steps, emu);
  emulate(gru.fused_recur_plan(pb.data(), rs, h0, 0, split, emu));
  emulate(gru.fused_recur_plan(pb.data(), rs, h0, split, steps, emu));
  EXPECT_LT(rel_l2(emu.h.to_host(), ref.h.to_host()), kTol);
  EXPECT_LT(rel_l2(emu.hprev.to_host(), ref.hprev.to_host()), kTol);
  EXPECT_LT(rel_l2(emu.gates.to_host(), ref.gates.to_host()), kTol);
  EXPECT_LT(rel_l2(emu.ghn.to_host(), ref.ghn.to_host()), kTol);
}

}  // namespace

TEST(FusedGruEmulated, Hidden64) { check_gru<64>(6, 70, true, true, 6); }    // two blocks, the second partly empty
TEST(FusedGruEmulated, Hidden128) { check_gru<128>(5, 40, true, true, 5); }  // two blocks of 32 streams
TEST(FusedGruEmulated, NullH0StartsFromZeros) {
  check_gru<64>(4, 70, false, true, 4);
  check_gru<128>(3, 40, false, true, 3);
}
TEST(FusedGruEmulated, NullResetNeverResets) {
  check_gru<64>(4, 70, true, false, 4);
  check_gru<128>(3, 40, false, false, 3);
}
TEST(FusedGruEmulated, StepsInTwoLaunchesCarryTheState) {  // as an online or step-wise caller runs recur()
  check_gru<64>(5, 70, true, true, 1);
  check_gru<128>(4, 40, false, true, 2);
}
