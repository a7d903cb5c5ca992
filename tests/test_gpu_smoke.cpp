// Every CUDA kernel of the project, launched at least once at a small size (label gpu), for compute-sanitizer
// (memcheck and racecheck, in scripts/gpu-check): the fused MLP forward at each (width, input width) pair and its
// backward, the fused GRU at both widths, the column moments and the shuffles' sort, the physics reset, step and
// policies of each task and integrator, scratch_itch's, the gridworld's scripted rollouts, the seed-batched ops
// (strided-batched GEMMs, segmented norms, Adam per seed, the GRU's seed-major steps), and each learner for three
// iterations (eager, captured, replayed) plus an evaluation. Correctness is the other GPU tests' job; these only check
// that nothing crashes or is non-finite.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "algo/belief_learner.h"
#include "algo/ppo.h"
#include "algo/rl2.h"
#include "algo/running_norm.h"
#include "algo/scripted_rollout.h"
#include "kernels/shuffle.h"
#include "nn/adam.h"
#include "nn/gru.h"
#include "nn/layer_norm.h"
#include "nn/mlp.h"
#include "sim/physics_env.h"
#include "sim/scratch_itch.h"
#include "tests/env_helpers.h"
#include "tests/gpu_guard.h"
#include "tests/random_vectors.h"

using namespace dyn;

namespace {

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

}  // namespace

TEST(GpuSmoke, FusedKernels) {
  DYN_REQUIRE_CUDA();
  const Backend b = Backend::cuda;
  // (W, WI) = (32, 32), (32, 64), (32, 128), (64, 64), (64, 128), (128, 128); backward at W = WI
  for (const MlpShape& s : {MlpShape{{20, 32, 32, 4}}, MlpShape{{50, 32, 32, 1}}, MlpShape{{100, 32, 32, 3}},
                            MlpShape{{40, 64, 64, 5}}, MlpShape{{128, 64, 64}}, MlpShape{{17, 128, 128, 6}}}) {
    ASSERT_TRUE(fused_mlp_supported(s));
    ParamLayout layout;
    const Mlp mlp(s, layout, "m");
    ParamBlob<float> p(b, layout, 1);
    const int batch = 300;  // three tiles, the last partly full
    Buffer<float> x = Buffer<float>::copy_of(b, randn<float>(size_t(batch) * s.sizes.front(), 2));
    Buffer<float> dy = Buffer<float>::copy_of(b, randn<float>(size_t(batch) * s.sizes.back(), 3));
    Buffer<float> dx(b, size_t(batch) * s.sizes.front());
    MlpWorkspace<float> ws;
    mlp.forward(b, p.value.data(), x.data(), batch, ws);
    if (fused_mlp_backward_supported(s))
      mlp_backward_fused(mlp, p.value.data(), p.grad.data(), x.data(), dy.data(), dx.data(), ws, false);
    EXPECT_TRUE(all_finite(ws.act.back().to_host()));
  }
  for (int hidden : {64, 128}) {
    ParamLayout layout;
    const Gru gru(24, hidden, layout, "g");
    ParamBlob<float> p(b, layout, 1);
    const int T = 5, N = 70;
    Buffer<float> x = Buffer<float>::copy_of(b, randn<float>(size_t(T) * N * 24, 4));
    std::vector<uint8_t> reset(size_t(T) * N);
    for (size_t i = 0; i < reset.size(); ++i) reset[i] = i % 7 == 0;
    Buffer<uint8_t> rb = Buffer<uint8_t>::copy_of(b, reset);
    GruWorkspace<float> ws;
    gru.forward(b, p.value.data(), x.data(), rb.data(), static_cast<const float*>(nullptr),
                static_cast<const float*>(nullptr), T, N, ws);
    EXPECT_TRUE(all_finite(ws.h.to_host()));
  }
}

TEST(GpuSmoke, ReductionsAndShuffles) {
  DYN_REQUIRE_CUDA();
  RunningNorm norm(Backend::cuda, 300);  // more columns than a block has threads
  Buffer<float> x = Buffer<float>::copy_of(Backend::cuda, randn<float>(size_t(3000) * 300, 5));
  norm.update(x.data(), 3000);
  for (double v : norm.stats()) EXPECT_TRUE(std::isfinite(v));
  PermutationSampler s(Backend::cuda, 1000);
  Buffer<int32_t> perm(Backend::cuda, 1000);
  s.draw(1, 0, perm.data());
  synchronize(Backend::cuda);
}

// The seed-batched ops: strided-batched GEMMs, the bias pass over S seeds' rows, the segmented norms and Adam per seed,
// the GRU's seed-major steps, LayerNorm per seed.
TEST(GpuSmoke, SeedBatchedOps) {
  DYN_REQUIRE_CUDA();
  const int seeds = 3, batch = 50;
  ParamLayout layout;
  const Mlp mlp({{20, 64, 64, 4}, Activation::tanh, Activation::none}, layout, "m");
  const size_t P = layout.total();
  Buffer<float> p = Buffer<float>::copy_of(Backend::cuda, randn<float>(P * seeds, 6, 0.1)),
                grads(Backend::cuda, P * seeds);
  Buffer<float> x = Buffer<float>::copy_of(Backend::cuda, randn<float>(size_t(seeds) * batch * 20, 7));
  Buffer<float> dy = Buffer<float>::copy_of(Backend::cuda, randn<float>(size_t(seeds) * batch * 4, 8));
  Buffer<float> dx(Backend::cuda, size_t(seeds) * batch * 20);
  MlpWorkspace<float> ws;
  mlp.forward_seeds(Backend::cuda, p.data(), P, x.data(), seeds, batch, ws);
  mlp.backward_seeds(Backend::cuda, p.data(), grads.data(), P, x.data(), dy.data(), dx.data(), seeds, ws, false);
  Adam<float> adam(Backend::cuda, P, AdamConfig{}, seeds);
  adam.step(p.data(), grads.data());
  EXPECT_TRUE(all_finite(p.to_host()));
  EXPECT_TRUE(all_finite(dx.to_host()));
  for (int s = 0; s < seeds; ++s) EXPECT_TRUE(std::isfinite(adam.last_grad_norm(s)));
  // the GRU over seed-major sequences [S, T, N, ·], with resets
  const int steps = 6, hidden = 32;
  ParamLayout gru_layout;
  const Gru gru(20, hidden, gru_layout, "g");
  const size_t G = gru_layout.total(), rows = size_t(seeds) * steps * batch;
  Buffer<float> gp = Buffer<float>::copy_of(Backend::cuda, randn<float>(G * seeds, 9, 0.1)),
                ggrad(Backend::cuda, G * seeds);
  ggrad.zero();
  Buffer<float> gx = Buffer<float>::copy_of(Backend::cuda, randn<float>(rows * 20, 10));
  Buffer<float> gdh = Buffer<float>::copy_of(Backend::cuda, randn<float>(rows * hidden, 11)),
                gdx(Backend::cuda, rows * 20);
  std::vector<uint8_t> resets(rows);
  for (size_t i = 0; i < rows; ++i) resets[i] = i % 7 == 0;
  Buffer<uint8_t> reset = Buffer<uint8_t>::copy_of(Backend::cuda, resets);
  GruWorkspace<float> gws;
  gru.forward_seeds(Backend::cuda, gp.data(), G, gx.data(), reset.data(), static_cast<const float*>(nullptr),
                    static_cast<const float*>(nullptr), seeds, steps, batch, gws);
  gru.backward_seeds(Backend::cuda, gp.data(), ggrad.data(), G, gx.data(), reset.data(), gdh.data(), 0, gdx.data(),
                     static_cast<float*>(nullptr), static_cast<float*>(nullptr), gws);
  EXPECT_TRUE(all_finite(gws.h.to_host()));
  EXPECT_TRUE(all_finite(ggrad.to_host()));
  // LayerNorm with a gain and bias per seed (the GRU's blob as the seeds' parameters)
  Buffer<float> ln_y(Backend::cuda, rows * 20), ln_mean(Backend::cuda, rows), ln_rstd(Backend::cuda, rows);
  layer_norm_forward_seeds(Backend::cuda, gx.data(), gp.data(), gp.data() + 20, G, ln_y.data(), ln_mean.data(),
                           ln_rstd.data(), seeds, int64_t(steps) * batch, 20);
  layer_norm_backward_seeds(Backend::cuda, gx.data(), gp.data(), ln_mean.data(), ln_rstd.data(), ln_y.data(),
                            gdx.data(), ggrad.data(), ggrad.data() + 20, G, seeds, int64_t(steps) * batch, 20);
  EXPECT_TRUE(all_finite(gdx.to_host()));
}

TEST(GpuSmoke, PhysicsEveryTaskAndIntegrator) {
  DYN_REQUIRE_CUDA();
  const Backend b = Backend::cuda;
  for (PhysicsTask task :
       {PhysicsTask::reacher, PhysicsTask::cheetah_vel, PhysicsTask::cheetah_dir, PhysicsTask::cheetah_wind_vel})
    for (Integrator integrator : {Integrator::euler, Integrator::rk4}) {
      PhysicsEnvParams p = physics_env_params(task);
      p.model.integrator = integrator;
      p.session.horizon = 8;  // episodes end (and reset) inside the run
      const int64_t n = 300;
      const int od = physics_obs_dim(task), ad = physics_action_dim(task);
      Buffer<float> obs(b, n * od), final_obs(b, n * od), actions(b, n * ad), reward(b, n);
      Buffer<uint8_t> send(b, n), trunc(b, n), term(b, n);
      Buffer<int32_t> sid(b, n);
      PhysicsBatchEnv envs(b, p, n);
      envs.reset(obs.data(), nullptr);
      const StepBatch out = StepBatch::of(obs.data(), reward.data(), term.data(), trunc.data(), send.data(), sid.data(),
                                          final_obs.data());
      for (uint32_t t = 0; t < 10; ++t) {
        envs.scripted(task == PhysicsTask::reacher && t % 2 == 0, ActionBuffers{nullptr, actions.data()}, t);
        envs.step(ActionBatch{nullptr, actions.data()}, out, t);
      }
      EXPECT_TRUE(all_finite(obs.to_host())) << int(task) << " " << int(integrator);
    }
}

TEST(GpuSmoke, ScratchItchResetStepAndPolicies) {
  DYN_REQUIRE_CUDA();
  const Backend b = Backend::cuda;
  ScratchParams p = scratch_params();
  p.session.horizon = 8;  // episodes end (and reset) inside the run
  ScratchBatchEnv envs(b, p, 300);
  StepBuffers io(b, envs.spec(), 300);
  io.reset(envs);
  for (uint32_t t = 0; t < 10; ++t) io.scripted_step(envs, t % 2 == 0, t);
  EXPECT_TRUE(all_finite(io.obs.to_host()));
}

TEST(GpuSmoke, GridworldScriptedRollouts) {
  DYN_REQUIRE_CUDA();
  for (ScriptedPolicy policy : {ScriptedPolicy::random, ScriptedPolicy::oracle})
    EXPECT_EQ(grid_rollout(Backend::cuda, GridParams{}, policy, 300, 2).episodes, 600);
}

namespace {

template <class Learner>
void three_iterations_and_an_evaluation(Learner& l) {
  for (int it = 0; it < 3; ++it) EXPECT_TRUE(std::isfinite(l.iterate().value_loss)) << "iteration " << it;
  EXPECT_TRUE(std::isfinite(l.evaluate(32, 1, 7).mean_return));
}

}  // namespace

TEST(GpuSmoke, Learners) {
  DYN_REQUIRE_CUDA();
  const EnvConfig env = default_env_config("gridworld", 0);
  PpoLearner ppo(Backend::cuda, env, 16, PpoConfig{});
  three_iterations_and_an_evaluation(ppo);
  Rl2Learner rl2(Backend::cuda, env, 16, PpoConfig{});
  three_iterations_and_an_evaluation(rl2);
  BeliefConfig dynamite = BeliefConfig::dynamite(), varibad = BeliefConfig::varibad();
  dynamite.batch_episodes = varibad.batch_episodes = 8;  // belief steps from the first update
  BeliefLearner d(Backend::cuda, env, 16, PpoConfig{}, dynamite), v(Backend::cuda, env, 16, PpoConfig{}, varibad);
  three_iterations_and_an_evaluation(d);
  three_iterations_and_an_evaluation(v);
}
