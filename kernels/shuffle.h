// Random permutations drawn where they are used: perm [n] = the indices 0..n−1 sorted by 32-bit Philox keys
// (seed, kStreamShuffle, index, draw) — a uniform shuffle, identical on both backends (keys that tie, rare, keep
// index order: CUB's radix sort is stable, the CPU sorts (key, index) pairs). The draw number is read through a
// StepRef, so a CUDA Graph replay draws a new permutation each time; nothing is allocated after construction. A seed
// batch draws every run's permutations of an update at once: one key launch and one segmented sort.
#pragma once

#include <cstdint>

#include "kernels/buffer.h"
#include "kernels/hd.h"
#include "kernels/step_ref.h"

namespace dyn {

// A seed batch's shuffles of one update, drawn in one call: `runs` runs × `per_run` permutations, run r's k-th keyed
// by seeds[r] at draw number draws[r] + k (both [R] in backend memory), written one after another (segment
// s = r · per_run + k).
// Without tables (seeds null): the one permutation of (one_seed, one_draw).
struct RunDraws {
  const uint32_t* seeds = nullptr;
  const uint32_t* draws = nullptr;
  int runs = 1, per_run = 1;
  uint32_t one_seed = 0;
  StepRef one_draw = 0u;
  int count() const { return seeds ? runs * per_run : 1; }
  DYN_HD uint32_t seed(int64_t segment) const { return seeds ? seeds[segment / per_run] : one_seed; }
  DYN_HD uint32_t draw(int64_t segment) const {
    return seeds ? draws[segment / per_run] + uint32_t(segment % per_run) : one_draw.get();
  }
  // `runs` when it has tables, else the one permutation of (seed, draw)
  static RunDraws or_one(const RunDraws& runs, uint32_t seed, StepRef draw) {
    return runs.seeds ? runs : RunDraws{nullptr, nullptr, 1, 1, seed, draw};
  }
};

class PermutationSampler {
 public:
  PermutationSampler() = default;
  // n < 2³¹: the indices are int32; up to `segments` permutations per call (draw_runs)
  PermutationSampler(Backend b, int64_t n, int segments = 1);
  int64_t size() const { return n_; }
  // perm [n] (backend memory) ← the permutation of draw number `draw` for `seed`.
  void draw(uint32_t seed, StepRef draw, int32_t* perm);
  // perm [R, per_run, n] ← every permutation of `runs` (runs.count() <= segments), each exactly what draw() gives
  // for its seed and draw number alone.
  void draw_runs(const RunDraws& runs, int32_t* perm);

 private:
  // perm [runs.count(), n]: the keys of `runs`, then sorted
  void draw_segments(const RunDraws& runs, int32_t* perm);

  Backend b_ = Backend::cpu;
  int64_t n_ = 0;
  int segments_ = 1;
  Buffer<uint32_t> keys_, sorted_keys_;  // [segments, n]
  Buffer<int32_t> iota_;                 // [segments, n] 0..n−1 in each (CUDA: the sort's values)
  Buffer<int32_t> offsets_;              // [segments + 1] s·n (CUDA: the segments' bounds)
  Buffer<uint64_t> pairs_;               // [segments, n] CPU: (key << 32) | index
  Buffer<uint8_t> temp_;                 // CUB's radix-sort scratch
};

}  // namespace dyn
