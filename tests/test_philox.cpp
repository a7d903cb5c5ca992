// Philox4x32-10: known answers (Random123 vectors, cuRAND's host generator) and the moments of every draw.
#include <curand.h>
#include <gtest/gtest.h>

#include <vector>

#include "kernels/philox.h"
#include "tests/stats.h"

using dyn::Philox;

TEST(Philox, Random123KnownAnswers) {
  // philox4x32_10 test vectors from the Random123 distribution (kat_vectors)
  auto r = dyn::philox4x32_10(dyn::Philox4{{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
  r = dyn::philox4x32_10(dyn::Philox4{{~0u, ~0u, ~0u, ~0u}}, ~0u, ~0u);
  EXPECT_EQ(r.v[0], 0x408f276du);
  EXPECT_EQ(r.v[1], 0x41c83b0eu);
  EXPECT_EQ(r.v[2], 0xa20bc7c6u);
  EXPECT_EQ(r.v[3], 0x6d5451fdu);
}

class CurandHost {
 public:
  CurandHost(uint32_t seed, uint32_t stream) {
    EXPECT_EQ(curandCreateGeneratorHost(&g_, CURAND_RNG_PSEUDO_PHILOX4_32_10), CURAND_STATUS_SUCCESS);
    EXPECT_EQ(curandSetPseudoRandomGeneratorSeed(g_, (uint64_t(stream) << 32) | seed), CURAND_STATUS_SUCCESS);
  }
  ~CurandHost() { curandDestroyGenerator(g_); }
  curandGenerator_t g_ = nullptr;
};

// cuRAND's host generator lays its output out as 65536 subsequences side by side: output word i comes from
// the block with counter (i / 4 / 65536, 0, i / 4 % 65536, 0). Our counter is (block, step, env, sub), so our
// draw d for env e (step = sub = 0) is cuRAND's output word 4 * (65536 * (d / 4) + e) + d % 4.
constexpr size_t kCurandSubsequences = 65536;
size_t curand_index(uint32_t env, uint32_t draw) { return 4 * (kCurandSubsequences * (draw / 4) + env) + draw % 4; }

TEST(Philox, MatchesCurandHostGeneratorBits) {
  for (uint32_t seed : {0u, 7u, 123456789u}) {
    const uint32_t stream = 5;
    CurandHost gen(seed, stream);
    const size_t n = 4 * kCurandSubsequences * 4;  // 4 blocks per env
    std::vector<uint32_t> ref(n);
    ASSERT_EQ(curandGenerate(gen.g_, ref.data(), n), CURAND_STATUS_SUCCESS);
    for (uint32_t env : {0u, 1u, 2u, 777u, 65535u}) {
      Philox rng(seed, stream, env, 0);
      for (uint32_t d = 0; d < 16; ++d)
        ASSERT_EQ(rng.next_u32(), ref[curand_index(env, d)]) << "env " << env << " draw " << d;
    }
  }
}

TEST(Philox, MatchesCurandHostGeneratorUniform) {
  CurandHost gen(42, 3);
  const size_t n = 4 * kCurandSubsequences * 2;
  std::vector<float> ref(n);
  ASSERT_EQ(curandGenerateUniform(gen.g_, ref.data(), n), CURAND_STATUS_SUCCESS);
  for (uint32_t env : {0u, 9u, 40000u}) {
    Philox rng(42, 3, env, 0);
    for (uint32_t d = 0; d < 8; ++d) ASSERT_EQ(rng.uniform(), ref[curand_index(env, d)]) << "env " << env;
  }
}

TEST(Philox, CounterWordsGiveIndependentSequences) {
  // changing any of seed, stream, env, step or sub changes the draws
  const uint32_t base = Philox(1, 2, 3, 4, 5).next_u32();
  EXPECT_NE(base, Philox(9, 2, 3, 4, 5).next_u32());
  EXPECT_NE(base, Philox(1, 9, 3, 4, 5).next_u32());
  EXPECT_NE(base, Philox(1, 2, 9, 4, 5).next_u32());
  EXPECT_NE(base, Philox(1, 2, 3, 9, 5).next_u32());
  EXPECT_NE(base, Philox(1, 2, 3, 4, 9).next_u32());
  EXPECT_EQ(base, Philox(1, 2, 3, 4, 5).next_u32());
}

constexpr size_t kN = 1 << 20;

TEST(Philox, UniformMoments) {
  std::vector<float> x(kN);
  Philox rng(11, 0, 0, 0);
  for (auto& v : x) {
    v = rng.uniform();
    ASSERT_GT(v, 0.0f);
    ASSERT_LE(v, 1.0f);
  }
  const Moments m = moments(x);
  const double var = 1.0 / 12, m4 = 1.0 / 80;
  EXPECT_NEAR(m.mean, 0.5, kSigmas * se_mean(var, kN));
  EXPECT_NEAR(m.var, var, kSigmas * se_var(var, m4, kN));
}

TEST(Philox, NormalMoments) {
  std::vector<float> x(kN);
  Philox rng(12, 0, 0, 0);
  for (auto& v : x) v = rng.normal();
  const Moments m = moments(x);
  EXPECT_NEAR(m.mean, 0.0, kSigmas * se_mean(1.0, kN));
  EXPECT_NEAR(m.var, 1.0, kSigmas * se_var(1.0, 3.0, kN));
  EXPECT_NEAR(m.m4, 3.0, 0.05);  // kurtosis of a normal
}

class PoissonMoments : public ::testing::TestWithParam<float> {};

TEST_P(PoissonMoments, MeanAndVarianceEqualLambda) {
  const double lambda = GetParam();
  const size_t n = 1 << 19;
  std::vector<int> x(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = Philox(13, 0, uint32_t(i), 0).poisson(float(lambda));
    ASSERT_GE(x[i], 0);
  }
  const Moments m = moments(x);
  // Poisson: variance λ, fourth central moment λ(1 + 3λ)
  EXPECT_NEAR(m.mean, lambda, kSigmas * se_mean(lambda, n));
  EXPECT_NEAR(m.var, lambda, kSigmas * se_var(lambda, lambda * (1 + 3 * lambda), n));
}

// both algorithms: inversion (< 10) and PTRS (>= 10), including the session-length rates (15, 100)
INSTANTIATE_TEST_SUITE_P(Lambdas, PoissonMoments,
                         ::testing::Values(0.3f, 1.0f, 3.0f, 9.5f, 10.0f, 15.0f, 100.0f, 1000.0f));

TEST(Philox, PoissonZeroRateIsZero) { EXPECT_EQ(Philox(1, 0, 0, 0).poisson(0.0f), 0); }

TEST(Philox, CategoricalFrequencies) {
  const float p[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  std::vector<size_t> count(4, 0);
  Philox rng(14, 0, 0, 0);
  for (size_t i = 0; i < kN; ++i) ++count[rng.categorical(p, 4)];
  for (int k = 0; k < 4; ++k) {
    const double se = std::sqrt(p[k] * (1 - p[k]) / kN);
    EXPECT_NEAR(double(count[k]) / kN, p[k], kSigmas * se) << "category " << k;
  }
}

TEST(Philox, UniformIntCoversRangeEvenly) {
  std::vector<size_t> count(21, 0);
  Philox rng(15, 0, 0, 0);
  for (size_t i = 0; i < kN; ++i) {
    const uint32_t k = rng.uniform_int(21);
    ASSERT_LT(k, 21u);
    ++count[k];
  }
  const double p = 1.0 / 21, se = std::sqrt(p * (1 - p) / kN);
  for (int k = 0; k < 21; ++k) EXPECT_NEAR(double(count[k]) / kN, p, kSigmas * se) << "value " << k;
}
