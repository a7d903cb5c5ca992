// Test conveniences over the env contract: a scripted rollout of GridParams, one gridworld env stepped by hand, and
// the spec of a continuous-action env for head and replay tests.
#pragma once

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
  dyn::env_step(dyn::GridEnv{p}, s, a, static_cast<const float*>(nullptr), env, step, out);
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
