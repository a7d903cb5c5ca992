// The fused MLP and GRU kernels, run on the host through tests/cuda_emulation.h (one thread per CUDA thread),
// against the unfused CPU reference at the shapes the configs use. This checks the kernels' logic on machines
// without a GPU; tests/test_nn_gpu.cpp checks the real thing on a device.
#include <gtest/gtest.h>

#include <vector>

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

constexpr double kTol = 1e-5;  // relative L2, float, different summation order

struct Out {
  std::vector<float> y, grads, dx;
};

Out unfused(const Mlp& mlp, const std::vector<float>& p, const std::vector<float>& x, const std::vector<float>& dy,
            int batch) {
  auto pb = Buffer<float>::copy_of(Backend::cpu, p), xb = Buffer<float>::copy_of(Backend::cpu, x),
       dyb = Buffer<float>::copy_of(Backend::cpu, dy);
  Buffer<float> g(Backend::cpu, p.size()), dx(Backend::cpu, x.size());
  MlpWorkspace<float> ws;
  mlp.forward(Backend::cpu, pb.data(), xb.data(), batch, ws);
  mlp.backward(Backend::cpu, pb.data(), g.data(), xb.data(), dyb.data(), dx.data(), ws, false);
  return {ws.act.back().to_host(), g.to_host(), dx.to_host()};
}

template <int W>
Out emulated(const Mlp& mlp, const std::vector<float>& p, const std::vector<float>& x, const std::vector<float>& dy,
             int batch) {
  const MlpShape& s = mlp.shape();
  auto pb = Buffer<float>::copy_of(Backend::cpu, p), xb = Buffer<float>::copy_of(Backend::cpu, x),
       dyb = Buffer<float>::copy_of(Backend::cpu, dy);
  Buffer<float> g(Backend::cpu, p.size()), dx(Backend::cpu, x.size());
  MlpWorkspace<float> ws;
  ws.reserve(Backend::cpu, s, batch);
  for (int l = 0; l < s.layers(); ++l) ws.dpre.emplace_back(Backend::cpu, size_t(batch) * s.sizes[l + 1]);
  fused_mlp::FusedLayers L{};
  L.layers = s.layers();
  L.hidden = s.hidden;
  L.output = s.output;
  for (int l = 0; l < L.layers; ++l) {
    L.w[l] = pb.data() + mlp.weight_offset(l);
    L.b[l] = pb.data() + mlp.bias_offset(l);
    L.act[l] = ws.act[l].data();
    L.dpre[l] = ws.dpre[l].data();
    L.in[l] = s.sizes[l];
    L.out[l] = s.sizes[l + 1];
  }
  const unsigned blocks = unsigned((batch + fused_mlp::kTile - 1) / fused_mlp::kTile);
  emulate_launch(blocks, fused_mlp::kThreads, fused_mlp::fused_mlp_forward_kernel<W>, L, xb.data(), batch);
  emulate_launch(blocks, fused_mlp::kThreads, fused_mlp::fused_mlp_backward_kernel<W>, L, dyb.data(), dx.data(), false,
                 batch);
  // weight gradients as mlp_backward_fused takes them: one GEMM per layer over the stored pre-activation gradients
  for (int l = 0; l < s.layers(); ++l)
    linear_backward(Backend::cpu, l == 0 ? xb.data() : ws.act[l - 1].data(), pb.data() + mlp.weight_offset(l),
                    ws.dpre[l].data(), static_cast<float*>(nullptr), g.data() + mlp.weight_offset(l),
                    g.data() + mlp.bias_offset(l), batch, s.sizes[l], s.sizes[l + 1], false);
  return {ws.act.back().to_host(), g.to_host(), dx.to_host()};
}

template <int W>
void check_mlp(const MlpShape& s, int batch) {
  ASSERT_TRUE(fused_mlp_supported(s));
  ParamLayout layout;
  const Mlp mlp(s, layout, "m");
  std::vector<float> p;
  initialize_params(layout, 3, p);
  for (size_t i = 0; i < p.size(); ++i) p[i] += 0.01f * float(i % 7);  // non-zero biases
  const auto x = randn<float>(size_t(batch) * s.sizes.front(), 4), dy = randn<float>(size_t(batch) * s.sizes.back(), 5);
  const Out ref = unfused(mlp, p, x, dy, batch), fused = emulated<W>(mlp, p, x, dy, batch);
  EXPECT_LT(rel_l2(fused.y, ref.y), kTol);
  EXPECT_LT(rel_l2(fused.grads, ref.grads), kTol);
  EXPECT_LT(rel_l2(fused.dx, ref.dx), kTol);
}

}  // namespace

TEST(FusedMlpEmulated, Width32) {
  check_mlp<32>({{17, 32, 32, 6}}, 130);
  check_mlp<32>({{20, 5}}, 64);  // a single layer
}
TEST(FusedMlpEmulated, Width64) {
  check_mlp<64>({{40, 64, 64, 64, 1}}, 200);  // 3 hidden layers
  check_mlp<64>({{12, 64, 64, 2}, Activation::tanh, Activation::tanh}, 129);
}
TEST(FusedMlpEmulated, Width128) { check_mlp<128>({{17, 128, 128, 6}}, 300); }

template <int H>
void check_gru(int steps, int batch) {
  using namespace fused_gru;
  const int I = 24;
  ParamLayout layout;
  const Gru gru(I, H, layout, "g");
  std::vector<float> p;
  initialize_params(layout, 9, p);
  for (size_t i = 0; i < p.size(); ++i) p[i] += 0.01f * float(i % 5);
  std::vector<uint8_t> reset(size_t(steps) * batch);
  for (size_t i = 0; i < reset.size(); ++i) reset[i] = (i * 2654435761u) % 11 == 0;
  auto pb = Buffer<float>::copy_of(Backend::cpu, p),
       xb = Buffer<float>::copy_of(Backend::cpu, randn<float>(size_t(steps) * batch * I, 1)),
       hb = Buffer<float>::copy_of(Backend::cpu, randn<float>(size_t(batch) * H, 2, 0.5));
  auto rb = Buffer<uint8_t>::copy_of(Backend::cpu, reset);
  GruWorkspace<float> ref, emu;
  gru.forward(Backend::cpu, pb.data(), xb.data(), rb.data(), static_cast<const float*>(nullptr), hb.data(), steps,
              batch, ref);
  // the fused path: the input projection as one GEMM, then the kernel over all steps
  emu.reserve(Backend::cpu, steps, batch, H);
  linear_forward(Backend::cpu, xb.data(), pb.data() + gru.weight_ih_offset(), pb.data() + gru.bias_ih_offset(),
                 emu.gi.data(), steps * batch, I, 3 * H);
  const GruOut out{emu.h.data(), emu.hprev.data(), emu.gates.data(), emu.ghn.data()};
  const unsigned blocks = unsigned((batch + GruTile<H>::NB - 1) / GruTile<H>::NB);
  emulate_launch(blocks, kThreads, fused_gru_forward_kernel<H>,
                 static_cast<const float*>(pb.data() + gru.weight_hh_offset()),
                 static_cast<const float*>(pb.data() + gru.bias_hh_offset()), static_cast<const float*>(emu.gi.data()),
                 static_cast<const uint8_t*>(rb.data()), static_cast<const float*>(hb.data()), steps, batch, out);
  EXPECT_LT(rel_l2(emu.h.to_host(), ref.h.to_host()), kTol);
  EXPECT_LT(rel_l2(emu.hprev.to_host(), ref.hprev.to_host()), kTol);
  EXPECT_LT(rel_l2(emu.gates.to_host(), ref.gates.to_host()), kTol);
  EXPECT_LT(rel_l2(emu.ghn.to_host(), ref.ghn.to_host()), kTol);
}

TEST(FusedGruEmulated, Hidden64) { check_gru<64>(6, 70); }    // two blocks, the second partly empty
TEST(FusedGruEmulated, Hidden128) { check_gru<128>(5, 40); }  // two blocks of 32 streams
