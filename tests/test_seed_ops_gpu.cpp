// The seed-batched ops on CUDA (label gpu; issue 19): cuBLAS' strided-batched GEMM, the MLP, GRU and LayerNorm over a
// seed batch and Adam with a norm per seed against the same ops called once per seed on the device, and against the
// CPU. cuBLAS picks other kernels for a batched call, so agreement is to float rounding (relative L2), not bit for bit.
#include <gtest/gtest.h>

#include "tests/gpu_guard.h"
#include "tests/gradcheck.h"
#include "tests/seed_ops.h"

using namespace dyn;

namespace {

// batched vs alone on CUDA, and CUDA batched vs CPU batched
template <class T>
void expect_close(const BatchedAndAlone<T>& cuda, const BatchedAndAlone<T>& cpu, double tol, const char* what) {
  ASSERT_EQ(cuda.first.size(), cuda.second.size()) << what;
  EXPECT_LE(rel_l2(cuda.first, cuda.second), tol) << what << ": batched against alone on CUDA";
  EXPECT_LE(rel_l2(cuda.first, cpu.first), tol) << what << ": CUDA against the CPU";
}

}  // namespace

TEST(SeedOpsGpu, StridedBatchedGemmMatchesOneGemmPerSeed) {
  DYN_REQUIRE_CUDA();
  for (const GemmCase& g : {GemmCase{false, true, 16, 24, 9, false}, GemmCase{true, false, 24, 9, 16, false},
                            GemmCase{false, false, 1, 12, 30, true}, GemmCase{false, true, 256, 128, 128, false}}) {
    expect_close(gemm_seeds<float>(Backend::cuda, g, 16), gemm_seeds<float>(Backend::cpu, g, 16), 1e-5, "gemm float");
    expect_close(gemm_seeds<double>(Backend::cuda, g, 4), gemm_seeds<double>(Backend::cpu, g, 4), 1e-12, "gemm double");
  }
}

TEST(SeedOpsGpu, MlpForwardBackwardMatchesOneCallPerSeed) {
  DYN_REQUIRE_CUDA();
  // the fused kernels take the single-seed calls of this shape; the seed batch takes the GEMM path
  const MlpShape policy{{10, 64, 64, 5}, Activation::tanh, Activation::none};
  expect_close(mlp_seeds<float>(Backend::cuda, policy, 16, 960), mlp_seeds<float>(Backend::cpu, policy, 16, 960), 1e-5,
               "policy MLP float");
  expect_close(mlp_seeds<double>(Backend::cuda, policy, 4, 37), mlp_seeds<double>(Backend::cpu, policy, 4, 37), 1e-12,
               "policy MLP double");
}

TEST(SeedOpsGpu, GruForwardBackwardMatchesOneCallPerSeed) {
  DYN_REQUIRE_CUDA();
  // hidden 64: the single-seed forward takes the fused kernel, the seed batch the GEMM path
  expect_close(gru_seeds<float>(Backend::cuda, 24, 64, 16, 60, 16, 0),
               gru_seeds<float>(Backend::cpu, 24, 64, 16, 60, 16, 0), 1e-4, "GRU 64 float");
  expect_close(gru_seeds<double>(Backend::cuda, 24, 64, 4, 12, 9, 5),
               gru_seeds<double>(Backend::cpu, 24, 64, 4, 12, 9, 5), 1e-11, "GRU 64 double, truncated");
}

TEST(SeedOpsGpu, LayerNormMatchesOneCallPerSeed) {
  DYN_REQUIRE_CUDA();
  expect_close(layer_norm_seeds<float>(Backend::cuda, 16, 400, 24), layer_norm_seeds<float>(Backend::cpu, 16, 400, 24),
               1e-5, "LayerNorm float");
}

TEST(SeedOpsGpu, AdamWithANormPerSeedMatchesOneAdamPerSeed) {
  DYN_REQUIRE_CUDA();
  expect_close(adam_seeds<float>(Backend::cuda, 16, 5000), adam_seeds<float>(Backend::cpu, 16, 5000), 1e-5,
               "adam float");
}
