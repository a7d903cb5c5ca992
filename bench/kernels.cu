// bench/kernels: throughput profiler. Prints, never asserts. CPU cases always; CUDA cases only when a device is
// present (not registered otherwise).
//   Gridworld*        env steps/s at 1k, 64k and 1M envs
//   Mlp*              samples/s and FLOP/s of an MLP w → w → w → w (two hidden layers), widths 64 and 128
//   Gru*              time and FLOP/s per time step at hidden 64 and 128, input 64, batch 2048–16384
//   SeedMlpStep*      one PPO-sized training step (forward, backward, Adam) of S seeds' MLPs 12 → 128 → 128 → 5
//                     (the gridworld policy's width) on a 240-row minibatch each (16 envs × 60 steps / 4): as one
//                     seed batch over [S, P] blobs (strided-batched GEMMs, one Adam) against S separate calls,
//                     S = 1, 4, 16, 64
//   SeedGruStep*      the same for S seeds' GRUs (input 24, hidden 64: the gridworld belief model's) forward and
//                     backward over one rollout each (60 steps × 16 envs), seed-major [S, T, N, ·]
//   PpoIteration*     training frames/s of one whole PPO iteration (collect + advantages + update) on the
//                     gridworld at 16 and 4096 envs, configs/gridworld.toml (60-step rollouts, 2 epochs × 4
//                     minibatches)
//   Rl2Iteration*     the same for RL²
//   WindIteration/<algo>*
//                     every learner on halfcheetah_wind_vel at 2048 envs with configs/halfcheetah_wind_vel.toml
//   PhysicsStep*      reacher / halfcheetah env steps/s (random actions held for the step; a halfcheetah env step is
//                     5 physics substeps, a reacher step 2 RK4 substeps) at 2048 … 262144 envs
//   ScratchStep*      scratch_itch env steps/s (random actions held for the step: joint deltas, forward kinematics,
//                     tool–arm contact, reward) at 32 (the paper's) … 262144 envs
//   MujocoHalfCheetah MuJoCo 2.2.2 (linked into this benchmark only) on our halfcheetah MJCF, one env on one
//                     thread: 5 × mj_step per env step, random controls — the side-by-side CPU reference
//   DynamiteIteration*, VaribadIteration*
//                     the same for the belief learners (SPEC defaults: 3 belief steps of 25 episodes after each
//                     PPO update), with the share of an iteration's time in collect, PPO update and belief update
//   ContrabarIteration*
//                     the same for ContraBAR (the reference's gridworld config: 30 CPC steps of 25 trajectories,
//                     GRU 256, K = 10, 15 negatives), split into collect, PPO update and CPC update
//
//   ./build/release/bench/kernels --benchmark_filter=Gridworld
#include <benchmark/benchmark.h>

#if defined(DYN_WITH_MUJOCO)
#include <mujoco/mujoco.h>
#endif

#include <cstdio>
#include <random>
#include <string>

#include <algorithm>
#include <memory>

#include "algo/learner.h"
#include "host/config.h"
#include "host/train.h"
#include "kernels/buffer.h"
#include "kernels/copy.h"
#include "kernels/parallel_for.cuh"
#include "nn/adam.h"
#include "nn/gru.h"
#include "nn/mlp.h"
#include "sim/gridworld.h"
#include "sim/physics_env.h"
#include "sim/scratch_itch.h"

using namespace dyn;

namespace {

constexpr int kActionSets = 8;  // distinct random action slices cycled through, [8, N]

struct GridBench {
  Backend b;
  int64_t n;
  GridBatchEnv env;
  Buffer<int32_t> actions;  // [8, N]
  Buffer<float> obs, reward;
  Buffer<uint8_t> session_end, truncated, terminated;
  Buffer<int32_t> session_id;
  StepBatch out;
  uint32_t step = 0;

  GridBench(Backend backend, int64_t n_envs)
      : b(backend),
        n(n_envs),
        env(b, GridParams{}, n),
        actions(b, kActionSets * n),
        obs(b, n * kGridObsDim),
        reward(b, n),
        session_end(b, n),
        truncated(b, n),
        terminated(b, n),
        session_id(b, n) {
    env.reset(obs.data(), nullptr);
    for (int k = 0; k < kActionSets; ++k)
      env.scripted(false, ActionBuffers{actions.data() + k * n, nullptr}, uint32_t(k));
    out = StepBatch::of(obs.data(), reward.data(), terminated.data(), truncated.data(), session_end.data(),
                        session_id.data());
    synchronize(b);
  }
  void env_step() {
    env.step(ActionBatch{actions.data() + (step % kActionSets) * n, nullptr}, out, step);
    ++step;
  }
  void policy_and_step() {
    env.scripted(false, ActionBuffers{actions.data(), nullptr}, step);
    env.step(ActionBatch{actions.data(), nullptr}, out, step);
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

std::vector<float> noise(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  Philox rng(seed, 0, 0, 0);
  for (float& x : v) x = rng.normal();
  return v;
}

// Times `fn` per benchmark iteration (CUDA events on the GPU, wall time on the CPU).
template <class Fn>
void timed_loop(benchmark::State& st, Backend b, Fn fn) {
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  if (b == Backend::cuda) {
    DYN_CUDA_CHECK(cudaEventCreate(&e0));
    DYN_CUDA_CHECK(cudaEventCreate(&e1));
  }
  for (auto _ : st) {
    if (b == Backend::cuda) DYN_CUDA_CHECK(cudaEventRecord(e0));
    fn();
    if (b == Backend::cuda) {
      DYN_CUDA_CHECK(cudaEventRecord(e1));
      DYN_CUDA_CHECK(cudaEventSynchronize(e1));
      float ms = 0;
      DYN_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
      st.SetIterationTime(ms / 1e3);
    }
  }
  if (e0) cudaEventDestroy(e0);
  if (e1) cudaEventDestroy(e1);
}

// MLP w → w → w → w; range(0) = width, range(1) = batch; `train` adds the backward pass; `fused` uses the
// fully fused CUDA kernels.
void BM_Mlp(benchmark::State& st, Backend b, bool train, bool fused) {
  const int w = int(st.range(0)), batch = int(st.range(1));
  ParamLayout layout;
  const Mlp mlp({{w, w, w, w}}, layout, "m");
  ParamBlob<float> p(b, layout, 1);
  Buffer<float> x = Buffer<float>::copy_of(b, noise(size_t(batch) * w, 2)),
                dy = Buffer<float>::copy_of(b, noise(size_t(batch) * w, 3));
  MlpWorkspace<float> ws;
  timed_loop(st, b, [&] {
    if (fused) {
      mlp_forward_fused(mlp, p.value.data(), x.data(), batch, ws);
      if (train) mlp_backward_fused(mlp, p.value.data(), p.grad.data(), x.data(), dy.data(), nullptr, ws, false);
      return;
    }
    mlp.forward(b, p.value.data(), x.data(), batch, ws);
    if (train)
      mlp.backward(b, p.value.data(), p.grad.data(), x.data(), dy.data(), static_cast<float*>(nullptr), ws, false);
  });
  const double samples = double(st.iterations()) * batch;
  const double flop_per_sample = 2.0 * 3 * w * w * (train ? 3 : 1);  // backward ≈ 2 × forward (dW and dx)
  st.SetItemsProcessed(int64_t(samples));
  st.counters["samples/s"] = benchmark::Counter(samples, benchmark::Counter::kIsRate);
  st.counters["FLOP/s"] = benchmark::Counter(samples * flop_per_sample, benchmark::Counter::kIsRate);
}

// GRU over 16 steps; range(0) = hidden, range(1) = batch. Reports time per step. `fused` runs the forward as
// the fused CUDA kernel.
void BM_Gru(benchmark::State& st, Backend b, bool backward, bool fused) {
  const int H = int(st.range(0)), N = int(st.range(1)), I = 64, T = 16;
  ParamLayout layout;
  const Gru gru(I, H, layout, "g");
  ParamBlob<float> p(b, layout, 1);
  Buffer<float> x = Buffer<float>::copy_of(b, noise(size_t(T) * N * I, 2)),
                h0 = Buffer<float>::copy_of(b, noise(size_t(N) * H, 3));
  Buffer<float> dh = Buffer<float>::copy_of(b, noise(size_t(T) * N * H, 4));
  GruWorkspace<float> ws;
  gru.forward(b, p.value.data(), x.data(), nullptr, static_cast<const float*>(nullptr), h0.data(), T, N, ws);
  timed_loop(st, b, [&] {
    if (backward)
      gru.backward(b, p.value.data(), p.grad.data(), x.data(), nullptr, dh.data(), 0, static_cast<float*>(nullptr),
                   static_cast<float*>(nullptr), static_cast<float*>(nullptr), ws);
    else if (fused)
      gru_forward_fused(gru, p.value.data(), x.data(), nullptr, nullptr, h0.data(), T, N, ws);
    else
      gru.forward(b, p.value.data(), x.data(), nullptr, static_cast<const float*>(nullptr), h0.data(), T, N, ws);
  });
  const double steps = double(st.iterations()) * T;
  const double flop_per_step = 2.0 * N * 3 * H * (I + H) * (backward ? 2 : 1);  // GEMMs only
  st.counters["steps/s"] = benchmark::Counter(steps, benchmark::Counter::kIsRate);
  st.counters["time/step"] = benchmark::Counter(steps, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  st.counters["FLOP/s"] = benchmark::Counter(steps * flop_per_step, benchmark::Counter::kIsRate);
}

// range(0) = S seeds, range(1) = 1 for the seed batch, 0 for S separate calls; each seed steps its own MLP.
void BM_SeedMlpStep(benchmark::State& st, Backend b) {
  const int seeds = int(st.range(0)), rows = 240;
  const bool batched = st.range(1) != 0;
  ParamLayout layout;
  const Mlp mlp({{12, 128, 128, 5}, Activation::tanh, Activation::none}, layout, "m");
  const size_t P = layout.total();
  std::vector<float> params, one;
  for (int s = 0; s < seeds; ++s) {
    initialize_params(layout, uint32_t(s), one);
    params.insert(params.end(), one.begin(), one.end());
  }
  Buffer<float> p = Buffer<float>::copy_of(b, params), grads(b, P * seeds);
  Buffer<float> x = Buffer<float>::copy_of(b, noise(size_t(seeds) * rows * 12, 2)),
                dy = Buffer<float>::copy_of(b, noise(size_t(seeds) * rows * 5, 3));
  AdamConfig cfg;
  cfg.lr = 1e-6f;  // the weights barely move: every iteration does the same work
  Adam<float> together(b, P, cfg, seeds);
  std::vector<Adam<float>> each;
  each.reserve(size_t(seeds));
  for (int s = 0; s < seeds; ++s) each.emplace_back(b, P, cfg);
  MlpWorkspace<float> ws;
  std::vector<MlpWorkspace<float>> ws_each(static_cast<size_t>(seeds));
  timed_loop(st, b, [&] {
    if (batched) {
      mlp.forward_seeds(b, p.data(), P, x.data(), seeds, rows, ws);
      mlp.backward_seeds(b, p.data(), grads.data(), P, x.data(), dy.data(), static_cast<float*>(nullptr), seeds, ws,
                         false);
      together.step(p.data(), grads.data());
      return;
    }
    for (int s = 0; s < seeds; ++s) {
      float* ps = p.data() + s * P;
      mlp.forward(b, ps, x.data() + size_t(s) * rows * 12, rows, ws_each[s]);
      mlp.backward(b, ps, grads.data() + s * P, x.data() + size_t(s) * rows * 12, dy.data() + size_t(s) * rows * 5,
                   static_cast<float*>(nullptr), ws_each[s], false);
      each[s].step(ps, grads.data() + s * P);
    }
  });
  const double seed_steps = double(st.iterations()) * seeds;
  st.counters["seed_steps/s"] = benchmark::Counter(seed_steps, benchmark::Counter::kIsRate);
  st.counters["time/seed_step"] =
      benchmark::Counter(seed_steps, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// range(0) = S seeds, range(1) = 1 for the seed batch, 0 for S separate calls; each seed runs its own GRU.
void BM_SeedGruStep(benchmark::State& st, Backend b) {
  const int seeds = int(st.range(0)), T = 60, N = 16, I = 24, H = 64;
  const bool batched = st.range(1) != 0;
  ParamLayout layout;
  const Gru gru(I, H, layout, "g");
  const size_t P = layout.total(), rows = size_t(T) * N;
  Buffer<float> p = Buffer<float>::copy_of(b, noise(P * seeds, 1)), grads(b, P * seeds);
  scale_values(b, p.data(), 0.1f, int64_t(P * seeds));
  Buffer<float> x = Buffer<float>::copy_of(b, noise(seeds * rows * I, 2)),
                dh = Buffer<float>::copy_of(b, noise(seeds * rows * H, 3));
  GruWorkspace<float> ws;
  std::vector<GruWorkspace<float>> ws_each(static_cast<size_t>(seeds));
  timed_loop(st, b, [&] {
    grads.zero();
    if (batched) {
      gru.forward_seeds(b, p.data(), P, x.data(), nullptr, static_cast<const float*>(nullptr),
                        static_cast<const float*>(nullptr), seeds, T, N, ws);
      gru.backward_seeds(b, p.data(), grads.data(), P, x.data(), nullptr, dh.data(), 0, static_cast<float*>(nullptr),
                         static_cast<float*>(nullptr), static_cast<float*>(nullptr), ws);
      return;
    }
    for (int s = 0; s < seeds; ++s) {
      const float* xs = x.data() + s * rows * I;
      gru.forward(b, p.data() + s * P, xs, nullptr, static_cast<const float*>(nullptr),
                  static_cast<const float*>(nullptr), T, N, ws_each[s]);
      gru.backward(b, p.data() + s * P, grads.data() + s * P, xs, nullptr, dh.data() + s * rows * H, 0,
                   static_cast<float*>(nullptr), static_cast<float*>(nullptr), static_cast<float*>(nullptr),
                   ws_each[s]);
    }
  });
  const double seed_steps = double(st.iterations()) * seeds;
  st.counters["seed_steps/s"] = benchmark::Counter(seed_steps, benchmark::Counter::kIsRate);
  st.counters["time/seed_step"] =
      benchmark::Counter(seed_steps, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// One whole training iteration (collect + advantages + update, + belief steps) per benchmark iteration, of `algo`
// on `env` as the command line builds it from configs/<env>.toml (its schedule, sizes and belief settings) with
// range(0) envs. Counters: frames/s, and the mean seconds per iteration of collect, PPO update and belief update
// (host clock, as the run's metrics report them). On the GPU the warm-up also captures the stages' CUDA Graphs.
void BM_Learner(benchmark::State& st, Backend b, std::string env, std::string algo) {
  Config c = Config::builtin(env);
  c.set_from_string("run.algo", algo, "bench");
  c.set_from_string("run.envs", std::to_string(st.range(0)), "bench");
  c.validate();
  const std::unique_ptr<Learner> learner = make_learner(c, b);
  const double frames_per_iteration = double(c.get_int("train.rollout_steps")) * double(st.range(0));
  // warm-up: workspaces sized, graphs captured, and for the belief learners enough whole episodes in the replay
  // for the belief steps to run (physics: one horizon)
  const int64_t warm = std::max<int64_t>(3, c.get_int("env.horizon") / c.get_int("train.rollout_steps") + 2);
  for (int64_t i = 0; i < warm; ++i) learner->iterate();
  double collect = 0, update = 0, ppo = 0, belief = 0;
  timed_loop(st, b, [&] {
    const IterationStats s = learner->iterate();
    collect += s.collect_s;
    update += s.update_s;
    ppo += s.metric("ppo_update_s");
    belief += algo == "contrabar" ? s.metric("cpc_update_s") : s.metric("belief_update_s");
  });
  const double n = double(st.iterations());
  st.counters["frames/s"] = benchmark::Counter(n * frames_per_iteration, benchmark::Counter::kIsRate);
  st.counters["collect_ms"] = 1e3 * collect / n;
  st.counters["update_ms"] = 1e3 * update / n;
  if (algo == "dynamite" || algo == "varibad" || algo == "contrabar") {
    st.counters["ppo_update_ms"] = 1e3 * ppo / n;
    st.counters[algo == "contrabar" ? "cpc_update_ms" : "belief_update_ms"] = 1e3 * belief / n;
  }
}

// Steps a continuous-action env batch for the benchmark's iterations with random actions drawn once (8 slices
// cycled through), so the figure is the env step alone; sets env_steps/s and returns the env steps taken.
double time_env_steps(benchmark::State& st, Backend b, BatchEnv& envs) {
  const int64_t n = envs.size();
  const int od = envs.spec().obs_dim, ad = envs.spec().action_dim;
  Buffer<float> obs(b, n * od), reward(b, n), actions(b, kActionSets * n * ad);  // [N, obs], [N], [8, N, A]
  Buffer<uint8_t> send(b, n), trunc(b, n), term(b, n);                           // [N]
  Buffer<int32_t> sid(b, n);                                                     // [N]
  envs.reset(obs.data(), nullptr);
  for (int k = 0; k < kActionSets; ++k)
    envs.scripted(false, ActionBuffers{nullptr, actions.data() + k * n * ad}, uint32_t(k));
  const StepBatch out = StepBatch::of(obs.data(), reward.data(), term.data(), trunc.data(), send.data(), sid.data());
  uint32_t step = 0;
  envs.step(ActionBatch{nullptr, actions.data()}, out, step++);  // warm-up
  const int steps_per_iter = b == Backend::cuda ? 10 : 1;
  timed_loop(st, b, [&] {
    for (int k = 0; k < steps_per_iter; ++k, ++step)
      envs.step(ActionBatch{nullptr, actions.data() + (step % kActionSets) * n * ad}, out, step);
  });
  const double steps = double(st.iterations()) * steps_per_iter * double(n);
  st.counters["env_steps/s"] = benchmark::Counter(steps, benchmark::Counter::kIsRate);
  return steps;
}

// Physics env steps: range(0) = task (0 reacher, 1 halfcheetah_vel), range(1) = envs.
void BM_PhysicsStep(benchmark::State& st, Backend b) {
  const PhysicsTask task = st.range(0) == 0 ? PhysicsTask::reacher : PhysicsTask::cheetah_vel;
  const PhysicsEnvParams p = physics_env_params(task);
  PhysicsBatchEnv envs(b, p, st.range(1));
  const double steps = time_env_steps(st, b, envs);
  st.counters["substeps/s"] = benchmark::Counter(steps * p.model.substeps, benchmark::Counter::kIsRate);
}

// scratch_itch env steps: range(0) = envs.
void BM_ScratchStep(benchmark::State& st, Backend b) {
  ScratchBatchEnv envs(b, scratch_params(), st.range(0));
  time_env_steps(st, b, envs);
}

#if defined(DYN_WITH_MUJOCO)
// MuJoCo 2.2.2 on tests/data/halfcheetah.xml: one model, one data, one thread; an env step is 5 × mj_step with the
// controls held, as Gymnasium does.
void BM_MujocoHalfCheetah(benchmark::State& st) {
  char error[1000] = "";
  mjModel* m = mj_loadXML(DYN_TEST_DATA "/halfcheetah.xml", nullptr, error, sizeof(error));
  if (!m) {
    st.SkipWithError(error);
    return;
  }
  mjData* d = mj_makeData(m);
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  int64_t steps = 0;
  for (auto _ : st) {
    for (int a = 0; a < m->nu; ++a) d->ctrl[a] = u(rng);
    for (int k = 0; k < 5; ++k) mj_step(m, d);
    if (++steps % 1000 == 0) mj_resetData(m, d);  // Gymnasium's 1000-step episodes
  }
  st.counters["env_steps/s"] = benchmark::Counter(double(steps), benchmark::Counter::kIsRate);
  mj_deleteData(d);
  mj_deleteModel(m);
}
#endif

// Registers one benchmark: wall time on the CPU (OpenMP threads), CUDA-event time on the GPU.
template <class Fn, class... Args>
benchmark::internal::Benchmark* add(const std::string& name, Backend b, Fn fn, Args... args) {
  auto* bm = benchmark::RegisterBenchmark(name.c_str(), fn, b, args...);
  if (b == Backend::cuda)
    bm->UseManualTime();
  else
    bm->UseRealTime();
  return bm;
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
                            std::pair{"GridworldRandomPolicyStep/", &BM_GridworldRandomPolicyStep}})
      add(name + tag, b, fn)->Arg(1 << 10)->Arg(1 << 16)->Arg(1 << 20)->Unit(benchmark::kMicrosecond);
    for (auto [name, algo] : {std::pair{"PpoIteration/", "ppo"}, std::pair{"Rl2Iteration/", "rl2"}})
      add(name + tag, b, BM_Learner, std::string("gridworld"), std::string(algo))
          ->Arg(16)
          ->Arg(4096)
          ->Unit(benchmark::kMillisecond);
    {
      auto* bm =
          add("PhysicsStep/" + tag, b, BM_PhysicsStep)->ArgNames({"task", "envs"})->Unit(benchmark::kMillisecond);
      for (int task : {0, 1})
        for (int64_t envs : {int64_t(2048), int64_t(16384), int64_t(65536), int64_t(262144)})
          if (b == Backend::cuda || envs <= 16384) bm->Args({task, envs});
    }
    {
      auto* bm = add("ScratchStep/" + tag, b, BM_ScratchStep)->ArgNames({"envs"})->Unit(benchmark::kMicrosecond);
      for (int64_t envs : {int64_t(32), int64_t(4096), int64_t(65536), int64_t(262144)})
        if (b == Backend::cuda || envs <= 4096) bm->Args({envs});
    }
#if defined(DYN_WITH_MUJOCO)
    if (b == Backend::cpu)
      benchmark::RegisterBenchmark("MujocoHalfCheetah/cpu_1thread", BM_MujocoHalfCheetah)->UseRealTime();
#endif
    for (auto [name, algo] : {std::pair{"DynamiteIteration/", "dynamite"}, std::pair{"VaribadIteration/", "varibad"},
                              std::pair{"ContrabarIteration/", "contrabar"}})
      add(name + tag, b, BM_Learner, std::string("gridworld"), std::string(algo))
          ->Arg(16)
          ->Arg(4096)
          ->Unit(benchmark::kMillisecond);
    // every learner on halfcheetah_wind_vel at the paper's 2048 envs, with its config (issue 13's throughput goals)
    for (const char* algo : {"ppo", "oracle", "rl2", "varibad", "dynamite"})
      add(std::string("WindIteration/") + algo + "/" + tag, b, BM_Learner, std::string("halfcheetah_wind_vel"),
          std::string(algo))
          ->Arg(2048)
          ->Unit(benchmark::kMillisecond);
    for (auto [name, fn] : {std::pair{"SeedMlpStep/", &BM_SeedMlpStep}, std::pair{"SeedGruStep/", &BM_SeedGruStep}})
      add(name + tag, b, fn)
          ->ArgsProduct({{1, 4, 16, 64}, {0, 1}})
          ->ArgNames({"seeds", "batched"})
          ->Unit(benchmark::kMicrosecond);
    for (bool fused : {false, true}) {
      if (fused && b != Backend::cuda) continue;  // the fused kernels are CUDA-only
      const std::string suffix = tag + (fused ? "_fused" : "");
      for (auto [name, train] : {std::pair{"MlpForward/", false}, std::pair{"MlpForwardBackward/", true}})
        add(name + suffix, b, BM_Mlp, train, fused)
            ->ArgsProduct({{64, 128}, {1 << 14, 1 << 16, 1 << 18, 1 << 20}})
            ->ArgNames({"width", "batch"})
            ->Unit(benchmark::kMillisecond);
      for (auto [name, bwd] : {std::pair{"GruForward/", false}, std::pair{"GruBackward/", true}}) {
        if (fused && bwd) continue;  // the backward has one (GEMM-based) implementation
        add(name + suffix, b, BM_Gru, bwd, fused)
            ->ArgsProduct({{64, 128}, {2048, 8192, 16384}})
            ->ArgNames({"hidden", "batch"})
            ->Unit(benchmark::kMillisecond);
      }
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
