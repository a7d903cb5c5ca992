// The interface every learner offers the training driver (host/train.cpp): iterate, evaluate, frames. Learners are
// built by name from the config (host/train.cpp); each composes the shared pieces of algo/: PpoCore, the env
// contract (sim/env.h), AgentCarry, EpisodeStats, the evaluation driver (algo/evaluate.h) and, for the belief
// learners, the episode replay.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "algo/episode_stats.h"
#include "algo/evaluate.h"
#include "algo/ppo_config.h"
#include "kernels/backend.h"
#include "kernels/state_io.h"

namespace dyn {

class Learner {
 public:
  virtual ~Learner() = default;
  // One collect → advantages → update (→ belief steps), timed per stage.
  virtual IterationStats iterate() = 0;
  // Deterministic actions on fresh episodes of n_envs envs drawn with `seed`, the agent's state updated online
  // (restarted at each episode start, or carried across episodes; an observer may watch: algo/evaluate.h); the
  // summary, per episode index, and learner-specific figures in EvalStats::extra.
  virtual EvalStats evaluate(int64_t n_envs, int episodes_per_env, uint32_t seed, const EvalMode& mode = {}) = 0;
  virtual int64_t frames() const = 0;
  // The names of the learner-specific figures its evaluations add (EvalStats::extra), known before the first
  // evaluation: metrics.csv's columns are fixed at its header.
  virtual std::vector<std::string> eval_figure_names() const { return {}; }
  // Everything that carries from one iteration to the next — networks, optimiser moments and steps, normalisers,
  // env and agent states, replay, counters — for checkpoints: saved and loaded through the same visit, so a run
  // resumed from it continues bit for bit on the CPU.
  virtual void visit_state(StateVisitor& v) = 0;
  virtual Backend backend() const = 0;
  virtual int64_t graph_replays() const = 0;
  virtual int64_t graphs_captured() const = 0;
  // For tests: the discrete actions [T, N] of the last collect (backend memory; nullptr for continuous actions).
  virtual const int32_t* rollout_actions() const = 0;
};

}  // namespace dyn
