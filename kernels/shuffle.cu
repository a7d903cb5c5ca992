// PermutationSampler: Philox keys in a parallel_for, then CUB's stable radix sort, segmented for several permutations
// (CUDA), or std::sort of each permutation's (key, index) pairs (CPU).
#include <algorithm>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <stdexcept>
#include <string>

#include "kernels/parallel_for.cuh"
#include "kernels/philox.h"
#include "kernels/shuffle.h"

namespace dyn {

namespace {

// Key of index i for draw d: the first 32 bits of Philox(seed, kStreamShuffle, i, d).
DYN_HD uint32_t shuffle_key(uint32_t seed, int64_t i, uint32_t draw) {
  return Philox(seed, kStreamShuffle, uint32_t(i), draw).next_u32();
}

struct Iota {  // 0..n−1 in every segment
  int32_t* out;
  int64_t n;
  DYN_HD void operator()(int64_t i) const { out[i] = int32_t(i % n); }
};

struct SegmentOffsets {
  int32_t* out;
  int64_t n;
  DYN_HD void operator()(int64_t s) const { out[s] = int32_t(s * n); }
};

size_t radix_sort_temp_bytes(int64_t n, int segments, const int32_t* offsets) {
  size_t bytes = 0, segmented = 0;
  const uint32_t* keys = nullptr;
  const int32_t* values = nullptr;
  DYN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys, static_cast<uint32_t*>(nullptr), values,
                                                 static_cast<int32_t*>(nullptr), n, 0, 32, cuda_stream()));
  if (segments > 1)
    DYN_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(nullptr, segmented, keys, static_cast<uint32_t*>(nullptr),
                                                            values, static_cast<int32_t*>(nullptr), n * segments,
                                                            segments, offsets, offsets + 1, 0, 32, cuda_stream()));
  return bytes > segmented ? bytes : segmented;
}

// Item i's key: item i % n of segment s = i / n, keyed by that segment's seed and draw.
struct SegmentKeys {
  RunDraws runs;
  int64_t n;
  DYN_HD uint32_t operator()(int64_t i) const {
    const int64_t s = i / n;
    return shuffle_key(runs.seed(s), i % n, runs.draw(s));
  }
};

struct DrawKeys {
  SegmentKeys key;
  uint32_t* keys;
  DYN_HD void operator()(int64_t i) const { keys[i] = key(i); }
};

// CPU: the key above the index within its segment, so sorting a segment's pairs sorts by key, then index
struct DrawPairs {
  SegmentKeys key;
  uint64_t* pairs;
  DYN_HD void operator()(int64_t i) const { pairs[i] = uint64_t(key(i)) << 32 | uint64_t(i % key.n); }
};

}  // namespace

PermutationSampler::PermutationSampler(Backend b, int64_t n, int segments) : b_(b), n_(n), segments_(segments) {
  if (n < 0 || n > INT32_MAX || segments < 1 || n * segments > INT32_MAX)
    throw std::invalid_argument("PermutationSampler: " + std::to_string(segments) + " x " + std::to_string(n) +
                                " items do not fit the int32 indices (at most 2147483647)");
  const int64_t items = n * segments;
  if (b == Backend::cpu) {
    pairs_ = Buffer<uint64_t>(b, size_t(items));
    return;
  }
  if (n == 0) return;  // nothing to sort (a learner whose minibatches use another plan)
  keys_ = Buffer<uint32_t>(b, size_t(items));
  sorted_keys_ = Buffer<uint32_t>(b, size_t(items));
  iota_ = Buffer<int32_t>(b, size_t(items));
  parallel_for(b, items, Iota{iota_.data(), n});
  offsets_ = Buffer<int32_t>(b, size_t(segments) + 1);
  parallel_for(b, segments + 1, SegmentOffsets{offsets_.data(), n});
  temp_ = Buffer<uint8_t>(b, radix_sort_temp_bytes(n, segments, offsets_.data()) + 1);
}

void PermutationSampler::draw(uint32_t seed, StepRef draw, int32_t* perm) {
  draw_segments(RunDraws::or_one(RunDraws{}, seed, draw), perm);
}

void PermutationSampler::draw_runs(const RunDraws& runs, int32_t* perm) {
  if (runs.count() > segments_)
    throw std::logic_error("PermutationSampler::draw_runs: " + std::to_string(runs.count()) +
                           " permutations, room for " + std::to_string(segments_));
  draw_segments(runs, perm);
}

void PermutationSampler::draw_segments(const RunDraws& runs, int32_t* perm) {
  if (n_ == 0) return;
  const int segments = runs.count();
  const int64_t items = n_ * segments;
  const SegmentKeys key{runs, n_};
  if (b_ == Backend::cpu) {
    uint64_t* pairs = pairs_.data();
    parallel_for(b_, items, DrawPairs{key, pairs});
    for (int s = 0; s < segments; ++s)  // within a segment keys are unique with the index beneath: the order is total
      std::sort(pairs + s * n_, pairs + (s + 1) * n_);
    for (int64_t i = 0; i < items; ++i) perm[i] = int32_t(pairs[i] & 0xffffffffu);
    return;
  }
  parallel_for(b_, items, DrawKeys{key, keys_.data()});
  size_t bytes = temp_.size();
  if (segments == 1)
    DYN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp_.data(), bytes, keys_.data(), sorted_keys_.data(), iota_.data(),
                                                   perm, n_, 0, 32, cuda_stream()));
  else  // stable, as DeviceRadixSort (the same implementation): ties keep index order, as on the CPU
    DYN_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(temp_.data(), bytes, keys_.data(), sorted_keys_.data(),
                                                            iota_.data(), perm, items, segments, offsets_.data(),
                                                            offsets_.data() + 1, 0, 32, cuda_stream()));
}

}  // namespace dyn
