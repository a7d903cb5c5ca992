// CUDA vs CPU parity for the op layer (label gpu): MLP and GRU forward/backward at the shapes the configs use,
// Adam, and the regression task trained on the GPU. Float results agree to a stated relative tolerance
// (cuBLAS and OpenBLAS sum in different orders).
#include <gtest/gtest.h>

#include <vector>

#include "kernels/philox.h"
#include "nn/adam.h"
#include "nn/gru.h"
#include "nn/mlp.h"
#include "tests/gpu_guard.h"
#include "tests/gradcheck.h"
#include "tests/random_vectors.h"
#include "tests/regression_task.h"

using namespace dyn;

namespace {

constexpr double kParityTol = 1e-5;  // relative L2, float, CPU vs CUDA

struct MlpRun {
  std::vector<float> y, grads, dx;
};

MlpRun run_mlp(Backend b, const MlpShape& shape, int batch) {
  ParamLayout layout;
  const Mlp mlp(shape, layout, "m");
  ParamBlob<float> p(b, layout, 3);
  Buffer<float> x = Buffer<float>::copy_of(b, randn<float>(size_t(batch) * shape.sizes.front(), 4));
  Buffer<float> dy = Buffer<float>::copy_of(b, randn<float>(size_t(batch) * shape.sizes.back(), 5));
  Buffer<float> dx(b, size_t(batch) * shape.sizes.front());
  MlpWorkspace<float> ws;
  mlp.forward(b, p.value.data(), x.data(), batch, ws);
  mlp.backward(b, p.value.data(), p.grad.data(), x.data(), dy.data(), dx.data(), ws, false);
  return MlpRun{ws.act.back().to_host(), p.grad.to_host(), dx.to_host()};
}

}  // namespace

class MlpParity : public ::testing::TestWithParam<int> {};

TEST_P(MlpParity, CudaMatchesCpu) {
  DYN_REQUIRE_CUDA();
  const int width = GetParam();
  // policy/critic MLPs (2 × 128), encoder MLPs (2 × 64), decoders (2 × 32), up to 3 hidden layers
  for (const MlpShape& s : {MlpShape{{17, width, width, 6}}, MlpShape{{40, width, width, width, 1}}}) {
    const MlpRun c = run_mlp(Backend::cpu, s, 1000), g = run_mlp(Backend::cuda, s, 1000);
    EXPECT_LT(rel_l2(g.y, c.y), kParityTol);
    EXPECT_LT(rel_l2(g.grads, c.grads), kParityTol);
    EXPECT_LT(rel_l2(g.dx, c.dx), kParityTol);
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, MlpParity, ::testing::Values(32, 64, 128));

class GruParity : public ::testing::TestWithParam<int> {};

TEST_P(GruParity, CudaMatchesCpu) {
  DYN_REQUIRE_CUDA();
  const int H = GetParam(), I = 64, T = 20, N = 256;
  std::vector<uint8_t> reset(size_t(T) * N);
  for (size_t i = 0; i < reset.size(); ++i) reset[i] = (i * 2654435761u) % 17 == 0;
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
    gru.forward(b, p.value.data(), x.data(), rb.data(), static_cast<const float*>(nullptr), h0.data(), T, N, ws);
    gru.backward(b, p.value.data(), p.grad.data(), x.data(), rb.data(), dh.data(), 0, dxb.data(),
                 static_cast<float*>(nullptr), static_cast<float*>(nullptr), ws);
    const int k = b == Backend::cuda;
    h[k] = ws.h.to_host();
    grads[k] = p.grad.to_host();
    dx[k] = dxb.to_host();
  }
  EXPECT_LT(rel_l2(h[1], h[0]), kParityTol);
  EXPECT_LT(rel_l2(grads[1], grads[0]), 1e-4);  // sums over T·N = 5120 rows
  EXPECT_LT(rel_l2(dx[1], dx[0]), kParityTol);
}

INSTANTIATE_TEST_SUITE_P(Hidden, GruParity, ::testing::Values(64, 128));

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
  EXPECT_LT(rel_l2(out[1], out[0]), 1e-6);
}

TEST(AdamParity, TrainsTinyRegressionOnCuda) {
  DYN_REQUIRE_CUDA();
  const RegressionResult r = train_regression(Backend::cuda, 2000);
  EXPECT_LT(r.final_loss, 0.01) << "initial " << r.initial_loss;
}
