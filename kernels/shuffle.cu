// PermutationSampler: Philox keys in a parallel_for, then CUB's stable radix sort (CUDA) or std::sort of
// (key, index) pairs (CPU).
#include <algorithm>
#include <cub/device/device_radix_sort.cuh>
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

struct DrawKeys {
  uint32_t seed;
  StepRef draw;
  uint32_t* keys;
  DYN_HD void operator()(int64_t i) const { keys[i] = shuffle_key(seed, i, draw.get()); }
};

struct DrawPairs {  // CPU: the key above the index, so sorting the pairs sorts by key, then index
  uint32_t seed;
  StepRef draw;
  uint64_t* pairs;
  DYN_HD void operator()(int64_t i) const { pairs[i] = uint64_t(shuffle_key(seed, i, draw.get())) << 32 | uint64_t(i); }
};

struct Iota {
  int32_t* out;
  DYN_HD void operator()(int64_t i) const { out[i] = int32_t(i); }
};

size_t radix_sort_temp_bytes(int64_t n) {
  size_t bytes = 0;
  DYN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint32_t*>(nullptr),
                                                 static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                                 static_cast<int32_t*>(nullptr), n, 0, 32, cuda_stream()));
  return bytes;
}

}  // namespace

PermutationSampler::PermutationSampler(Backend b, int64_t n) : b_(b), n_(n) {
  if (n < 0 || n > INT32_MAX)
    throw std::invalid_argument("PermutationSampler: " + std::to_string(n) +
                                " items do not fit the int32 indices (at most 2147483647)");
  if (b == Backend::cpu) {
    pairs_ = Buffer<uint64_t>(b, size_t(n));
    return;
  }
  if (n == 0) return;  // nothing to sort (a learner whose minibatches use another plan)
  keys_ = Buffer<uint32_t>(b, size_t(n));
  sorted_keys_ = Buffer<uint32_t>(b, size_t(n));
  iota_ = Buffer<int32_t>(b, size_t(n));
  parallel_for(b, n, Iota{iota_.data()});
  temp_ = Buffer<uint8_t>(b, radix_sort_temp_bytes(n) + 1);
}

void PermutationSampler::draw(uint32_t seed, StepRef draw, int32_t* perm) {
  if (n_ == 0) return;
  if (b_ == Backend::cpu) {
    uint64_t* pairs = pairs_.data();
    parallel_for(b_, n_, DrawPairs{seed, draw, pairs});
    std::sort(pairs, pairs + n_);  // keys are unique with the index beneath: the order is total
    for (int64_t i = 0; i < n_; ++i) perm[i] = int32_t(pairs[i] & 0xffffffffu);
    return;
  }
  parallel_for(b_, n_, DrawKeys{seed, draw, keys_.data()});
  size_t bytes = temp_.size();
  DYN_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp_.data(), bytes, keys_.data(), sorted_keys_.data(), iota_.data(),
                                                 perm, n_, 0, 32, cuda_stream()));
}

}  // namespace dyn
