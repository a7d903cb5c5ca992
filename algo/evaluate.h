// The one evaluation loop (SPEC §5): fresh episodes on an env, deterministic actions from an agent that keeps its
// own online state (a recurrent state, a belief), returns summarised by EpisodeStats.
#pragma once

#include <cstdint>

#include "algo/episode_stats.h"
#include "sim/env.h"

namespace dyn {

class EvalAgent {
 public:
  virtual ~EvalAgent() = default;
  // The env has just been reset; obs [N, obs] and latent [N, latent] are its first observations and latents.
  virtual void begin(BatchEnv& env) = 0;
  // Actions for global step `step` from the current observations (and the current sessions' latents).
  virtual void act(const float* obs, const float* latent, const ActionBuffers& out, uint32_t step) = 0;
  // After the env step: what it wrote (the agent's carry advances; probes look).
  virtual void after_step(const ActionBatch& actions, const StepBatch& out) = 0;
};

// episodes_per_env episodes on every env of `env` (reset first) with `agent`.
EvalStats run_evaluation(BatchEnv& env, int episodes_per_env, EvalAgent& agent);

}  // namespace dyn
