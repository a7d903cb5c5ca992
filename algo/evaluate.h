// The one evaluation loop (SPEC §5): fresh episodes on an env, deterministic actions from an agent that keeps its
// own online state (a recurrent state, a belief), returns summarised by EpisodeStats, overall and per episode index.
// Two modes: each episode on its own (the agent starts afresh where an episode starts: the single-episode return),
// or the agent's state carried from one episode to the next (Fig. 6's consecutive episodes). An observer (a trace)
// may watch every step.
#pragma once

#include <cstdint>
#include <vector>

#include "algo/episode_stats.h"
#include "sim/env.h"

namespace dyn {

// Columns [col, col + width) of an agent's rows `stride` wide in backend memory ([N, stride]), named for a trace.
struct AgentColumns {
  const char* name;
  const float* rows;
  int stride, col, width;
};

class EvalAgent {
 public:
  virtual ~EvalAgent() = default;
  // The env has just been reset; obs [N, obs] and latent [N, latent] are its first observations and latents.
  virtual void begin(BatchEnv& env) = 0;
  // Actions for global step `step` from the current observations (and the current sessions' latents).
  virtual void act(const float* obs, const float* latent, const ActionBuffers& out, uint32_t step) = 0;
  // After the env step: what it wrote (the agent's carry advances; probes look). With the state carried across
  // episodes, `out` shows no episode end (truncated and terminated are 0).
  virtual void after_step(const ActionBatch& actions, const StepBatch& out) = 0;
  // What the agent believes after act(), for traces (a belief's mean, variance, termination logit); none by default.
  virtual std::vector<AgentColumns> columns() const { return {}; }
  // Learner-specific figures after the evaluation (EvalStats::extra).
  virtual void add_figures(EvalStats&) const {}
};

// Watches an evaluation step by step (host/eval_trace.h writes one): acted() after the agent chose its actions from
// obs and the current sessions' latents, stepped() after the env step.
class EvalObserver {
 public:
  virtual ~EvalObserver() = default;
  virtual void acted(const EnvSpec& spec, int episode, int t, const float* obs, const float* latent,
                     const ActionBatch& actions, const std::vector<AgentColumns>& agent) = 0;
  virtual void stepped(const EnvSpec& spec, const StepBatch& out) = 0;
};

struct EvalMode {
  // false: the agent restarts where an episode starts (single-episode returns); true: its state (recurrent state,
  // belief, previous action and reward) runs on across episode ends, as in VariBAD's multi-episode evaluation; the
  // env itself starts each episode from the prior either way.
  bool carry_across_episodes = false;
  EvalObserver* observer = nullptr;
};

// episodes_per_env episodes on every env of `env` (reset first) with `agent`; the summary over all episodes, with
// EvalStats::per_episode[k] the k-th episode of every env.
EvalStats run_evaluation(BatchEnv& env, int episodes_per_env, EvalAgent& agent, const EvalMode& mode);

}  // namespace dyn
