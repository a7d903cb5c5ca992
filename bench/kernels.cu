// bench/kernels: throughput profiler. Gridworld env steps/s at 1k, 64k and 1M envs on the CPU backend, and on
// CUDA when a device is present (the CUDA cases are not registered otherwise). Prints, never asserts.
//
//   ./build/release/bench/kernels --benchmark_filter=Gridworld
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>

#include "kernels/buffer.h"
#include "kernels/parallel_for.cuh"
#include "sim/gridworld.h"

using namespace dyn;

namespace {

constexpr int kActionSets = 8;  // distinct random action slices cycled through, [8, N]

struct GridBench {
  Backend b;
  int64_t n;
  GridParams p;
  Buffer<GridState> state;
  Buffer<int32_t> actions;  // [8, N]
  Buffer<float> obs, reward;
  Buffer<uint8_t> session_end, truncated, terminated;
  Buffer<int32_t> session_id;
  uint32_t step = 0;

  GridBench(Backend backend, int64_t n_envs)
      : b(backend),
        n(n_envs),
        state(b, n),
        actions(b, kActionSets * n),
        obs(b, n * kGridObsDim),
        reward(b, n),
        session_end(b, n),
        truncated(b, n),
        terminated(b, n),
        session_id(b, n) {
    gridworld_reset(b, p, state.data(), obs.data(), n, 0);
    for (int k = 0; k < kActionSets; ++k)
      gridworld_policy(b, ScriptedPolicy::random, p, state.data(), actions.data() + k * n, n, uint32_t(k));
    synchronize(b);
  }
  GridBatchOut out() {
    return GridBatchOut{obs.data(),        reward.data(), session_end.data(), truncated.data(), terminated.data(),
                        session_id.data(), nullptr};
  }
  void env_step() {
    gridworld_step(b, p, state.data(), actions.data() + (step % kActionSets) * n, out(), n, step);
    ++step;
  }
  void policy_and_step() {
    gridworld_policy(b, ScriptedPolicy::random, p, state.data(), actions.data(), n, step);
    gridworld_step(b, p, state.data(), actions.data(), out(), n, step);
    ++step;
  }
};

// Runs `steps_per_iter` calls of `fn` per benchmark iteration; CUDA time comes from events.
template <class Fn>
void run(benchmark::State& st, GridBench& g, Fn fn) {
  const int steps_per_iter = g.b == Backend::cuda ? 50 : 1;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  if (g.b == Backend::cuda) {
    DYN_CUDA_CHECK(cudaEventCreate(&e0));
    DYN_CUDA_CHECK(cudaEventCreate(&e1));
  }
  for (auto _ : st) {
    if (g.b == Backend::cuda) DYN_CUDA_CHECK(cudaEventRecord(e0));
    for (int k = 0; k < steps_per_iter; ++k) fn();
    if (g.b == Backend::cuda) {
      DYN_CUDA_CHECK(cudaEventRecord(e1));
      DYN_CUDA_CHECK(cudaEventSynchronize(e1));
      float ms = 0;
      DYN_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
      st.SetIterationTime(ms / 1e3);
    }
  }
  const double steps = double(st.iterations()) * steps_per_iter * double(g.n);
  st.SetItemsProcessed(int64_t(steps));
  st.counters["env_steps/s"] = benchmark::Counter(steps, benchmark::Counter::kIsRate);
  if (e0) cudaEventDestroy(e0);
  if (e1) cudaEventDestroy(e1);
}

void BM_GridworldStep(benchmark::State& st, Backend b) {
  GridBench g(b, st.range(0));
  run(st, g, [&] { g.env_step(); });
}

void BM_GridworldRandomPolicyStep(benchmark::State& st, Backend b) {
  GridBench g(b, st.range(0));
  run(st, g, [&] { g.policy_and_step(); });
}

void register_all() {
  const bool gpu = cuda_device_count() > 0;
  for (Backend b : {Backend::cpu, Backend::cuda}) {
    if (b == Backend::cuda && !gpu) {
      std::fprintf(stderr, "bench/kernels: no CUDA device; CUDA benchmarks skipped\n");
      continue;
    }
    const std::string tag = backend_name(b);
    for (auto [name, fn] : {std::pair{"GridworldStep/", &BM_GridworldStep},
                            std::pair{"GridworldRandomPolicyStep/", &BM_GridworldRandomPolicyStep}}) {
      auto* bm = benchmark::RegisterBenchmark((name + tag).c_str(), fn, b)
                     ->Arg(1 << 10)
                     ->Arg(1 << 16)
                     ->Arg(1 << 20)
                     ->Unit(benchmark::kMicrosecond);
      if (b == Backend::cuda)
        bm->UseManualTime();
      else
        bm->UseRealTime();  // OpenMP: wall time, not the main thread's CPU time
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
