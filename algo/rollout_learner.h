// What the PPO-based learners share around their PpoCore: the training env and the buffers its step writes besides
// the core's storage, the horizon clock, the frame count, and the collect's CUDA Graphs (one per horizon phase, the
// global step read from a counter in backend memory). A learner fills in collect_steps() — what its policy sees and
// how its agent state advances — and builds its PpoCore for the env's spec.
#pragma once

#include <cstdint>
#include <memory>

#include "algo/learner.h"
#include "algo/ppo_core.h"
#include "kernels/graph.h"
#include "sim/env.h"

namespace dyn {

class RolloutLearner : public Learner {
 public:
  ~RolloutLearner() override;
  IterationStats iterate() override;
  int64_t frames() const override { return frames_; }
  Backend backend() const override { return b_; }
  int64_t graph_replays() const override { return graphs_.replays() + core_->graph_replays(); }
  int64_t graphs_captured() const override { return graphs_.captured() + core_->graphs_captured(); }
  const int32_t* rollout_actions() const override { return core_->rollout_actions(); }
  // The one evaluate of every learner: a fresh env of the training kind, the learner's eval_agent, run_evaluation.
  EvalStats evaluate(int64_t n_envs, int episodes_per_env, uint32_t seed, const EvalMode& mode = {}) override;
  const EnvSpec& spec() const { return env_->spec(); }
  // The env, the observations and flags the next collect starts from, the step counter, the horizon clock, the
  // frame count and the PPO core; learners add theirs.
  void visit_state(StateVisitor& v) override;

  // The stages of iterate(), timed each: the collect (captured per horizon phase) with its statistics, GAE,
  // and the update.
  void collect(IterationStats& st);
  void advantages() { core_->advantages(); }
  virtual void update(IterationStats& st) { core_->update(st); }

 protected:
  RolloutLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg);
  // The T env steps of a collect (captured: everything that changes between calls is read from backend memory).
  virtual void collect_steps() = 0;
  // After a collect: learner-specific statistics (and host mirrors of what the collect did).
  virtual void after_collect(IterationStats&) {}
  // Step t of the rollout for the policy: its stored input, actions, log-probabilities and values.
  PolicyStep rollout_policy_step(int t);
  // What env step t writes: the core's reward and flags of step t, this object's observation buffers.
  StepBatch step_outputs(int t, float* latent = nullptr);
  // The learner's evaluation agent for n envs of the training env's spec: deterministic actions from the trained
  // networks and its own online state.
  virtual std::unique_ptr<EvalAgent> eval_agent(int64_t n) = 0;

  Backend b_;
  EnvConfig env_cfg_;
  std::unique_ptr<BatchEnv> env_;
  int64_t n_;
  PpoConfig cfg_;
  std::unique_ptr<PpoCore> core_;  // built by the learner for the env's spec
  HorizonClock clock_;
  int64_t frames_ = 0;
  StageGraphs graphs_;
  Buffer<uint32_t> step_dev_;      // [1] the global step at the start of the next collect
  Buffer<float> obs_, final_obs_;  // [N, obs] the env's observations, and where the last actions led
  Buffer<uint8_t> send_;           // [N] session ends
  Buffer<int32_t> sid_;            // [N] session ids
};

}  // namespace dyn
