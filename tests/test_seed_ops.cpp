// The seed-batched ops on the CPU (issue 19: parameters as [S, P] blobs): strided-batched GEMM, MLP, GRU and LayerNorm
// forward and backward over a seed batch, and Adam with a clip norm per seed each give, for every seed, exactly the
// figures of the op called for that seed alone — bit for bit, in float and double. The CUDA side is
// tests/test_seed_ops_gpu.cpp.
#include <gtest/gtest.h>

#include <stdexcept>

#include "tests/seed_ops.h"

using namespace dyn;

namespace {

// Bitwise equality of every element (EXPECT_EQ on the vectors would print all of them on a failure).
template <class T>
void expect_identical(const BatchedAndAlone<T>& r, const char* what) {
  ASSERT_EQ(r.first.size(), r.second.size()) << what;
  size_t differ = 0, first = 0;
  for (size_t i = 0; i < r.first.size(); ++i)
    if (r.first[i] != r.second[i] && differ++ == 0) first = i;
  EXPECT_EQ(differ, 0u) << what << ": " << differ << " of " << r.first.size() << " values differ, the first at "
                        << first << " (" << r.first[first] << " batched, " << r.second[first] << " alone)";
}

// Small products run one per thread, large ones (above the CPU GEMM's parallel threshold of 2^22 FLOPs: 256 × 128 ×
// 128 is 2^23) one after another over all threads; a shared B (stride 0) is what the bias gradient's ones vector is.
const GemmCase kGemmCases[] = {
    {false, false, 7, 5, 3, false},      {false, true, 16, 24, 9, false}, {true, false, 24, 9, 16, false},
    {true, true, 5, 6, 7, false},        {false, false, 1, 12, 30, true}, {false, true, 256, 128, 128, false},
    {true, false, 128, 256, 128, false},
};

}  // namespace

TEST(SeedOps, StridedBatchedGemmEqualsOneGemmPerSeed) {
  for (const GemmCase& g : kGemmCases) {
    const std::string what = "gemm " + std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k) +
                             (g.trans_a ? " Aᵀ" : "") + (g.trans_b ? " Bᵀ" : "");
    expect_identical(gemm_seeds<float>(Backend::cpu, g, 4), what.c_str());
    expect_identical(gemm_seeds<double>(Backend::cpu, g, 3), what.c_str());
  }
}

TEST(SeedOps, MlpForwardBackwardEqualsOneCallPerSeed) {
  // the gridworld policy's shape (tanh), and a ReLU MLP with an output activation, at an odd batch
  const MlpShape policy{{10, 64, 64, 5}, Activation::tanh, Activation::none};
  const MlpShape relu{{7, 32, 3}, Activation::relu, Activation::tanh};
  expect_identical(mlp_seeds<float>(Backend::cpu, policy, 4, 37), "policy MLP, float");
  expect_identical(mlp_seeds<double>(Backend::cpu, policy, 4, 37), "policy MLP, double");
  expect_identical(mlp_seeds<float>(Backend::cpu, relu, 5, 3), "ReLU MLP, float");
  // one seed is the plain op
  expect_identical(mlp_seeds<float>(Backend::cpu, relu, 1, 9), "ReLU MLP, one seed");
}

TEST(SeedOps, GruForwardBackwardEqualsOneCallPerSeed) {
  // the belief model's GRU width (64) over a short episode with resets, full and truncated backpropagation
  expect_identical(gru_seeds<float>(Backend::cpu, 24, 64, 4, 12, 9, 0), "GRU 64, float");
  expect_identical(gru_seeds<double>(Backend::cpu, 24, 64, 3, 12, 9, 5), "GRU 64, double, truncated every 5");
  expect_identical(gru_seeds<float>(Backend::cpu, 5, 16, 1, 7, 3, 0), "GRU 16, one seed");
}

TEST(SeedOps, LayerNormEqualsOneCallPerSeed) {
  // ContraBAR's widths: the encoder's LayerNorm over 3 × 8 embeddings, the classifier's over [z, h]
  expect_identical(layer_norm_seeds<float>(Backend::cpu, 4, 25, 24), "LayerNorm 24, float");
  expect_identical(layer_norm_seeds<double>(Backend::cpu, 3, 10, 306), "LayerNorm 306, double");
}

TEST(SeedOps, AdamWithANormPerSeedEqualsOneAdamPerSeed) {
  const BatchedAndAlone<float> r = adam_seeds<float>(Backend::cpu, 4, 1000);
  expect_identical(r, "adam, float");
  // the norms: seed s's gradients are 4^s times larger, so the clip differs per seed (one shared norm would not
  // reproduce the separate runs)
  const size_t norms = r.first.size() - 4;
  for (int s = 1; s < 4; ++s) EXPECT_GT(r.first[norms + s], 3.0f * r.first[norms + s - 1]);
  EXPECT_LT(r.first[norms], 1.0f);  // seed 0 below the clip limit, the others above it
  EXPECT_GT(r.first[norms + 1], 1.0f);
  expect_identical(adam_seeds<double>(Backend::cpu, 3, 257), "adam, double");
}

TEST(SeedOps, RefusesUnevenSeedShares) {
  ParamLayout layout;
  const Mlp mlp({{3, 4, 2}}, layout, "m");
  MlpWorkspace<float> ws;
  Buffer<float> p(Backend::cpu, layout.total() * 2), x(Backend::cpu, 2 * 5 * 3), dy(Backend::cpu, 2 * 5 * 2);
  p.zero();
  x.zero();
  dy.zero();
  mlp.forward_seeds(Backend::cpu, p.data(), layout.total(), x.data(), 2, 5, ws);
  EXPECT_EQ(ws.batch, 10);
  EXPECT_THROW(mlp.backward_seeds(Backend::cpu, p.data(), p.data(), layout.total(), x.data(), dy.data(),
                                  static_cast<float*>(nullptr), 3, ws, false),
               std::invalid_argument);
  EXPECT_THROW(mlp.forward_seeds(Backend::cpu, p.data(), layout.total(), x.data(), 0, 5, ws), std::invalid_argument);
  EXPECT_THROW(Adam<float>(Backend::cpu, 10, AdamConfig{}, 0), std::invalid_argument);
  // a GRU workspace holding a seed batch is not a single run's
  ParamLayout gru_layout;
  const Gru gru(3, 4, gru_layout, "g");
  Buffer<float> gp(Backend::cpu, gru_layout.total() * 2), gx(Backend::cpu, 2 * 6 * 3);
  gp.zero();
  gx.zero();
  GruWorkspace<float> gws;
  gru.forward_seeds(Backend::cpu, gp.data(), gru_layout.total(), gx.data(), nullptr, static_cast<const float*>(nullptr),
                    static_cast<const float*>(nullptr), 2, 3, 2, gws);
  EXPECT_THROW(gru.recur(Backend::cpu, gp.data(), nullptr, static_cast<const float*>(nullptr), 0, 3, gws),
               std::invalid_argument);
  Adam<float> adam(Backend::cpu, 10, AdamConfig{}, 2);
  EXPECT_THROW(adam.last_grad_norm(2), std::out_of_range);
}
