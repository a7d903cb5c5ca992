// Learning on the physics envs (CPU, one thread, fixed seeds, each test well under 3 minutes): PPO beats the
// random policy on reacher and halfcheetah_vel by a clear margin, and PPO that sees the current session's latent
// (`--algo oracle`) beats state-only PPO on halfcheetah_vel. Each learner is built as the command line builds it,
// from the env's shipped config (configs/<env>.toml), at 256 envs instead of 2048 so a few million frames make
// enough gradient steps.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "algo/scripted_rollout.h"
#include "host/config.h"
#include "host/train.h"

using namespace dyn;

namespace {

constexpr int64_t kEnvs = 256;
constexpr int64_t kEvalEnvs = 64;
constexpr int kEvalEpisodes = 2;

Config physics_config(const std::string& env, const std::string& algo, uint32_t seed) {
  Config c = Config::builtin(env);
  c.set_from_string("run.algo", algo, "test");
  c.set_from_string("run.envs", std::to_string(kEnvs), "test");
  c.set_from_string("run.seed", std::to_string(seed), "test");
  c.validate();
  return c;
}

// Trains `algo` on `env` for `frames`, then evaluates it on fresh episodes (deterministic actions).
EvalStats train_and_evaluate(const std::string& env, const std::string& algo, int64_t frames, uint32_t seed) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::unique_ptr<Learner> learner = make_learner(physics_config(env, algo, seed), Backend::cpu);
  while (learner->frames() < frames) learner->iterate();
  const EvalStats ev = learner->evaluate(kEvalEnvs, kEvalEpisodes, 777);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s on %s, seed %u: %lld frames in %.1f s, eval %.2f ± %.2f\n", algo.c_str(), env.c_str(), seed,
              (long long)learner->frames(), secs, ev.mean_return, ev.ci95);
  return ev;
}

double random_return(const std::string& env) {
  const RolloutSummary r =
      run_scripted_rollout(Backend::cpu, env_config_of(physics_config(env, "ppo", 0)), ScriptedPolicy::random, 256, 2);
  std::printf("random policy on %s: %.2f ± %.2f\n", env.c_str(), r.mean_return, r.return_ci95);
  return r.mean_return;
}

}  // namespace

TEST(PhysicsLearning, PpoBeatsRandomOnReacher) {
  const double random = random_return("reacher");
  const EvalStats ppo = train_and_evaluate("reacher", "ppo", 1000000, 1);
  EXPECT_GT(ppo.mean_return, random + 15.0);
}

TEST(PhysicsLearning, PpoBeatsRandomOnHalfcheetahVel) {
  const double random = random_return("halfcheetah_vel");
  const EvalStats ppo = train_and_evaluate("halfcheetah_vel", "ppo", 1000000, 1);
  EXPECT_GT(ppo.mean_return, random + 200.0);
}

TEST(PhysicsLearning, OracleBeatsPpoOnHalfcheetahVel) {
  const EvalStats ppo = train_and_evaluate("halfcheetah_vel", "ppo", 2000000, 2);
  const EvalStats oracle = train_and_evaluate("halfcheetah_vel", "oracle", 2000000, 2);
  EXPECT_GT(oracle.mean_return - ppo.mean_return, oracle.ci95 + ppo.ci95)
      << "the latent-seeing PPO is not above state-only PPO beyond both CIs";
}
