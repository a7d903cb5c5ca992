// Random permutations drawn where they are used: perm [n] = the indices 0..n−1 sorted by 32-bit Philox keys
// (seed, kStreamShuffle, index, draw) — a uniform shuffle, identical on both backends (keys that tie, rare, keep
// index order: CUB's radix sort is stable, the CPU sorts (key, index) pairs). The draw number is read through a
// StepRef, so a CUDA Graph replay draws a new permutation each time; nothing is allocated after construction.
#pragma once

#include <cstdint>

#include "kernels/buffer.h"
#include "kernels/step_ref.h"

namespace dyn {

class PermutationSampler {
 public:
  PermutationSampler() = default;
  PermutationSampler(Backend b, int64_t n);  // n < 2³¹: the indices are int32
  int64_t size() const { return n_; }
  // perm [n] (backend memory) ← the permutation of draw number `draw` for `seed`.
  void draw(uint32_t seed, StepRef draw, int32_t* perm);

 private:
  Backend b_ = Backend::cpu;
  int64_t n_ = 0;
  Buffer<uint32_t> keys_, sorted_keys_;  // [n]
  Buffer<int32_t> iota_;                 // [n] 0..n−1 (CUDA: the sort's values)
  Buffer<uint64_t> pairs_;               // [n] CPU: (key << 32) | index
  Buffer<uint8_t> temp_;                 // CUB's radix-sort scratch
};

}  // namespace dyn
