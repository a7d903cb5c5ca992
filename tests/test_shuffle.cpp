// PermutationSampler on the CPU: each draw is a permutation, it is the indices sorted by their Philox keys (an
// independent computation here), draws and seeds differ, the draw number can come from backend memory, and the
// position of an item is uniform (χ²). tests/test_gpu_parity.cu checks that CUDA draws the same permutations.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "kernels/philox.h"
#include "kernels/shuffle.h"

using namespace dyn;

namespace {

std::vector<int32_t> draw(int64_t n, uint32_t seed, uint32_t d) {
  PermutationSampler s(Backend::cpu, n);
  Buffer<int32_t> perm(Backend::cpu, size_t(n));
  s.draw(seed, d, perm.data());
  return perm.to_host();
}

}  // namespace

TEST(Shuffle, IsThePermutationSortedByPhiloxKeys) {
  for (int64_t n : {int64_t(1), int64_t(5), int64_t(960), int64_t(245760)}) {
    const std::vector<int32_t> p = draw(n, 7, 3);
    std::vector<int32_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[size_t(i)], i) << "not a permutation of " << n;
    // reference: stable sort of the indices by key (ties keep index order, as CUB's radix sort)
    std::vector<uint32_t> key(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) key[size_t(i)] = Philox(7, kStreamShuffle, uint32_t(i), 3).next_u32();
    std::vector<int32_t> ref(static_cast<size_t>(n));
    std::iota(ref.begin(), ref.end(), 0);
    std::stable_sort(ref.begin(), ref.end(), [&](int32_t a, int32_t b) { return key[size_t(a)] < key[size_t(b)]; });
    EXPECT_EQ(p, ref) << n;
  }
}

TEST(Shuffle, DrawsAndSeedsDiffer) {
  const std::vector<int32_t> a = draw(960, 1, 0);
  EXPECT_EQ(a, draw(960, 1, 0));
  EXPECT_NE(a, draw(960, 1, 1));
  EXPECT_NE(a, draw(960, 2, 0));
}

TEST(Shuffle, DrawNumberFromBackendMemory) {  // as a captured update reads it
  PermutationSampler s(Backend::cpu, 100);
  Buffer<uint32_t> counter = Buffer<uint32_t>::copy_of(Backend::cpu, std::vector<uint32_t>{5});
  Buffer<int32_t> perm(Backend::cpu, 100);
  s.draw(9, StepRef(counter.data(), 2), perm.data());
  EXPECT_EQ(perm.to_host(), draw(100, 9, 7));
}

TEST(Shuffle, PositionsAreUniform) {
  // where item 0 lands over 4000 draws of n = 8: χ² with 7 degrees of freedom, P(χ² > 24.3) = 0.001
  const int n = 8, draws = 4000;
  std::vector<int> count(n, 0);
  for (int d = 0; d < draws; ++d) {
    const std::vector<int32_t> p = draw(n, 11, uint32_t(d));
    count[size_t(std::find(p.begin(), p.end(), 0) - p.begin())]++;
  }
  double chi2 = 0;
  for (int c : count) chi2 += (c - draws / double(n)) * (c - draws / double(n)) / (draws / double(n));
  EXPECT_LT(chi2, 24.3);
}

TEST(Shuffle, RefusesMoreItemsThanInt32Indices) {
  EXPECT_THROW(PermutationSampler(Backend::cpu, int64_t(1) << 31), std::invalid_argument);
  EXPECT_THROW(PermutationSampler(Backend::cpu, int64_t(1) << 30, 2), std::invalid_argument);  // 2 segments
}

// A seed batch's shuffles of an update in one call: run r's k-th permutation is draw() of its seed at its counter
// plus k, each run at its own counter; more than the sampler's segments is refused.
TEST(Shuffle, RunsDrawEachRunsPermutationsInOneCall) {
  const int64_t n = 37;
  const int runs = 3, per_run = 4;
  PermutationSampler s(Backend::cpu, n, runs * per_run);
  const std::vector<uint32_t> seeds = {5, 9, 5}, counters = {0, 2, 7};  // runs 0 and 2: one seed, other counters
  const auto seeds_b = Buffer<uint32_t>::copy_of(Backend::cpu, seeds);
  const auto counters_b = Buffer<uint32_t>::copy_of(Backend::cpu, counters);
  Buffer<int32_t> perm(Backend::cpu, size_t(runs * per_run * n));
  s.draw_runs(RunDraws{seeds_b.data(), counters_b.data(), runs, per_run}, perm.data());
  const std::vector<int32_t> all = perm.to_host();
  for (int r = 0; r < runs; ++r)
    for (int k = 0; k < per_run; ++k) {
      const std::vector<int32_t> one(all.begin() + (r * per_run + k) * n, all.begin() + (r * per_run + k + 1) * n);
      EXPECT_EQ(one, draw(n, seeds[size_t(r)], counters[size_t(r)] + uint32_t(k))) << "run " << r << " draw " << k;
    }
  EXPECT_THROW(s.draw_runs(RunDraws{seeds_b.data(), counters_b.data(), runs, per_run + 1}, perm.data()),
               std::logic_error);
}
