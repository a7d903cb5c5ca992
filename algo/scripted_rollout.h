// Rolls out a scripted policy (random or oracle) on N envs of any kind (sim/env.h) for a number of
// episodes per env and summarises the episodes: mean return with a 95% confidence interval, mean number of
// sessions, env steps/s.
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "sim/env.h"

namespace dyn {

struct RolloutSummary {
  int64_t episodes = 0;
  int64_t env_steps = 0;
  double mean_return = 0, return_ci95 = 0, return_std = 0;
  double mean_sessions = 0;
  double seconds = 0;  // wall time of the stepping loop (policy + env step + statistics)
  double env_steps_per_s() const { return seconds > 0 ? double(env_steps) / seconds : 0; }
};

// The scripted policy on `env` (its N envs) for episodes_per_env episodes each.
RolloutSummary run_scripted_rollout(BatchEnv& env, ScriptedPolicy policy, int64_t episodes_per_env);
// The same on N envs made from an env config.
RolloutSummary run_scripted_rollout(Backend b, const EnvConfig& cfg, ScriptedPolicy policy, int64_t n_envs,
                                    int64_t episodes_per_env);

}  // namespace dyn
