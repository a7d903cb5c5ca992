// Test conveniences over the env contract: a scripted rollout of GridParams, one gridworld env stepped by hand, the
// spec of a continuous-action env for head and replay tests, and the buffers of a batched step of a
// continuous-action env with a scripted step through them.
#pragma once

#include "kernels/buffer.h"

#include "algo/scripted_rollout.h"
#include "sim/env.h"
#include "sim/gridworld.h"

// run_scripted_rollout on n gridworlds with these params.
inline dyn::RolloutSummary grid_rollout(dyn::Backend b, const dyn::GridParams& p, dyn::ScriptedPolicy policy, int64_t n,
                                        int64_t episodes_per_env) {
  dyn::GridBatchEnv env(b, p, n);
  return run_scripted_rollout(env, policy, episodes_per_env);
}

// One gridworld env step through the shared recipe (env_step of sim/env.h).
inline void grid_step(const dyn::GridParams& p, dyn::GridState& s, int a, uint32_t env, uint32_t step,
                      const dyn::StepRow& out) {
  dyn::env_step(dyn::GridEnv{p}, s, a, static_cast<const float*>(nullptr), {p.seed, env}, step, out);
}

// The spec of an env with `actions`-wide continuous actions (no env behind it).
inline dyn::EnvSpec continuous_spec(int obs, int actions, int horizon = 10) {
  dyn::EnvSpec s;
  s.name = "test";
  s.obs_dim = obs;
  s.action_kind = dyn::ActionKind::continuous;
  s.action_dim = actions;
  s.horizon = horizon;
  return s;
}

// Backend buffers for one batched step of N envs of a continuous-action env ([N, ·] each, final_obs and latent
// included), and the env's scripted policy followed by a step through them.
struct StepBuffers {
  dyn::Buffer<float> obs, final_obs, latent, actions, reward;
  dyn::Buffer<uint8_t> session_end, truncated, terminated;
  dyn::Buffer<int32_t> session_id;
  StepBuffers(dyn::Backend b, const dyn::EnvSpec& spec, int64_t n)
      : obs(b, size_t(n * spec.obs_dim)),
        final_obs(b, size_t(n * spec.obs_dim)),
        latent(b, size_t(n * spec.latent_dim)),
        actions(b, size_t(n * spec.action_dim)),
        reward(b, size_t(n)),
        session_end(b, size_t(n)),
        truncated(b, size_t(n)),
        terminated(b, size_t(n)),
        session_id(b, size_t(n)) {}
  dyn::StepBatch batch() {
    return dyn::StepBatch::of(obs.data(), reward.data(), terminated.data(), truncated.data(), session_end.data(),
                              session_id.data(), final_obs.data(), latent.data());
  }
  void reset(dyn::BatchEnv& env) { env.reset(obs.data(), latent.data()); }
  void scripted_step(dyn::BatchEnv& env, bool oracle, uint32_t step) {
    env.scripted(oracle, dyn::ActionBuffers{nullptr, actions.data()}, step);
    env.step(dyn::ActionBatch{nullptr, actions.data()}, batch(), step);
  }
};
