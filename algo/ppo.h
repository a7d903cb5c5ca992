// PPO on the gridworld (SPEC §4), state-only policy (`--algo ppo`): the env and its running input normalisation
// around a PpoCore (separate actor and critic MLPs 2 × 128 ReLU, categorical head, reward scaling,
// truncation-aware GAE, advantage normalisation, epochs × shuffled minibatches, grad-norm clipping, Adam). Every
// buffer lives on the backend; the host reads back a handful of scalars per iteration for logging.
#pragma once

#include <cstdint>

#include "algo/ppo_config.h"
#include "algo/ppo_core.h"
#include "algo/running_norm.h"
#include "kernels/graph.h"
#include "sim/gridworld.h"

namespace dyn {

class GridPpo {
 public:
  GridPpo(Backend b, const GridParams& env, int64_t n_envs, const PpoConfig& cfg);
  IterationStats iterate();
  // Deterministic (mode) actions on fresh episodes drawn with `seed`, normalised with the current statistics.
  EvalStats evaluate(int64_t n_envs, int episodes_per_env, uint32_t seed);
  int64_t frames() const { return frames_; }
  Backend backend() const { return b_; }
  int64_t graph_replays() const { return graphs_.replays() + core_.graph_replays(); }  // collect + core stages
  int64_t graphs_captured() const { return graphs_.captured() + core_.graphs_captured(); }
  // For tests: the actions [T, N] of the last collect (backend memory).
  const int32_t* rollout_actions() const { return core_.rollout_actions(); }

  // The stages of iterate(), public only because CUDA extended lambdas may not live in private members.
  void collect(IterationStats& st);
  void advantages() { core_.advantages(); }
  void update(IterationStats& st) { core_.update(st); }
  void collect_steps();  // the T env steps of a collect (captured)

 private:
  Backend b_;
  GridParams env_;
  int64_t n_;
  PpoConfig cfg_;
  PpoCore core_;
  RunningNorm obs_norm_;
  HeadWorkspaces roll_ws_;
  uint32_t step_ = 0;  // global env step counter (Philox counter word), host mirror of step_dev_
  int64_t frames_ = 0;
  StageGraphs graphs_;
  Buffer<uint32_t> step_dev_;      // [1] the global step at the start of the next collect
  Buffer<GridState> state_;        // [N]
  Buffer<float> obs_, final_obs_;  // [N, 6]
  Buffer<uint8_t> send_;           // [N] session ends (not used by PPO)
  Buffer<int32_t> sid_;            // [N] session ids (not used by PPO)
};

}  // namespace dyn
