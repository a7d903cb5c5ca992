// StageGraphs: runs a training stage (a host function that only queues backend work) through CUDA Graphs. Per key,
// the first call runs the stage directly (so every workspace, handle and scratch buffer it needs gets allocated
// outside any capture), the second captures it once into a graph, and every call from then on replays that graph
// with one launch. On the CPU backend, or when disabled, the stage simply runs.
//
// A captured stage must read everything that changes between calls from backend memory (counters included) and
// must not allocate, free or synchronise; the buffers it touches must outlive the StageGraphs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>

#include "kernels/backend.h"

namespace dyn {

class StageGraphs {
 public:
  StageGraphs(Backend b, bool enabled) : b_(b), enabled_(enabled && b == Backend::cuda) {}
  StageGraphs(const StageGraphs&) = delete;
  StageGraphs& operator=(const StageGraphs&) = delete;
  ~StageGraphs();

  // Runs `stage` for `key` (stages whose launch sequence differs get different keys).
  void run(int64_t key, const std::function<void()>& stage);
  int64_t replays() const { return replays_; }  // graph launches so far
  int64_t captured() const { return int64_t(execs_.size()); }

 private:
  Backend b_;
  bool enabled_;
  std::map<int64_t, int> calls_;              // calls per key (capped at 2)
  std::map<int64_t, cudaGraphExec_t> execs_;  // instantiated graphs
  int64_t replays_ = 0;
};

}  // namespace dyn
