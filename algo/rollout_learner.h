// What the PPO-based learners share around their PpoCore: the training env and the buffers its step writes besides
// the core's storage, the horizon clock, the frame count, and the collect's CUDA Graphs (one per horizon phase, the
// global step read from a counter in backend memory). A learner fills in collect_steps() — what its policy sees and
// how its agent state advances — and builds its PpoCore for the env's spec.
//
// A seed batch: S runs' envs side by side in one BatchEnv (run s's N envs at rows [s·N, (s+1)·N), seeded with its
// seed; one launch steps them all), the buffers [S·N, ·] in the same order, one PpoCore over all of them. The batch
// iterates once per round for all runs (iterate_run: each run's TrainingRun asks for its iteration in turn), and each
// run evaluates and checkpoints its own slice (evaluate_run, visit_run_state) as it would alone.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "algo/learner.h"
#include "algo/ppo_core.h"
#include "kernels/graph.h"
#include "sim/env.h"

namespace dyn {

class RolloutLearner : public Learner {
 public:
  ~RolloutLearner() override;
  IterationStats iterate() override { return iterate_run(0, rounds_); }
  // Run `run`'s stats of iteration `iteration` (0-based) of the batch: the round is run when the first of the runs
  // asks for it; every run then reads its own stats of it.
  IterationStats iterate_run(int run, int64_t iteration);
  int runs() const { return int(seeds_.size()); }
  int64_t frames() const override { return frames_; }
  Backend backend() const override { return b_; }
  int64_t graph_replays() const override { return graphs_.replays() + core_->graph_replays(); }
  int64_t graphs_captured() const override { return graphs_.captured() + core_->graphs_captured(); }
  const int32_t* rollout_actions() const override { return core_->rollout_actions(); }
  // The one evaluate of every learner: a fresh env of the training kind, the learner's eval_agent, run_evaluation.
  EvalStats evaluate(int64_t n_envs, int episodes_per_env, uint32_t seed, const EvalMode& mode = {}) override {
    return evaluate_run(0, n_envs, episodes_per_env, seed, mode);
  }
  // Run `run`'s policy of a seed batch, evaluated as that run alone evaluates.
  EvalStats evaluate_run(int run, int64_t n_envs, int episodes_per_env, uint32_t seed, const EvalMode& mode = {});
  const EnvSpec& spec() const { return env_->spec(); }
  // The env, the observations and flags the next collect starts from, the step counter, the horizon clock, the
  // frame count and the PPO core; learners add theirs. In a seed batch, run `run`'s part under the names and shapes
  // of that run alone (visit_state is run 0's: one run).
  void visit_state(StateVisitor& v) override { visit_run_state(v, 0); }
  virtual void visit_run_state(StateVisitor& v, int run);

  // The stages of iterate(), timed each: the collect (captured per horizon phase) with each run's statistics
  // (st[0..runs())), GAE, and the update.
  void collect(IterationStats* st);
  void advantages() { core_->advantages(); }
  virtual void update(IterationStats& st) { core_->update(st); }

 protected:
  // seeds: a seed batch's runs (empty: one run, env.seed)
  RolloutLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg,
                 const std::vector<uint32_t>& seeds = {});
  // The T env steps of a collect (captured: everything that changes between calls is read from backend memory).
  virtual void collect_steps() = 0;
  // After a collect: learner-specific statistics of each run into st[0..runs()) (and host mirrors of what the
  // collect did).
  virtual void after_collect(IterationStats*) {}
  // The update of a seed batch's round: each run's loss statistics into st[0..runs()).
  virtual void update_runs(IterationStats* st) {
    if (runs() == 1)
      update(st[0]);
    else
      core_->update(st);
  }
  // Step t of the rollout for the policy: its stored input, actions, log-probabilities and values.
  PolicyStep rollout_policy_step(int t);
  // What every run's env step t writes: the core's reward and flags of step t, this object's observation buffers
  // (latent: a [S·N, L] buffer, or nullptr).
  StepBatch step_outputs(int t, float* latent = nullptr);
  // Every run's envs reset into obs_ (and latent [S·N, L] unless nullptr).
  void reset_envs(float* latent = nullptr) { env_->reset(obs_.data(), latent); }
  // Every run's envs' step t with the policy step's actions, into step_outputs(t, latent).
  void step_envs(int t, const PolicyStep& ps, float* latent = nullptr) {
    env_->step(ps.actions.batch(), step_outputs(t, latent), ps.step);
  }
  // The learner's evaluation agent for n envs of the training env's spec: deterministic actions from the trained
  // networks and its own online state.
  virtual std::unique_ptr<EvalAgent> eval_agent(int64_t n) = 0;
  // Run `run`'s evaluation agent (a seed batch's learner overrides it).
  virtual std::unique_ptr<EvalAgent> run_eval_agent(int64_t n, int run);

  Backend b_;
  EnvConfig env_cfg_;
  std::vector<uint32_t> seeds_;    // [S] the runs' seeds (one run: env.seed)
  std::unique_ptr<BatchEnv> env_;  // [S·N] every run's envs
  int64_t n_;                      // envs per run
  PpoConfig cfg_;
  std::unique_ptr<PpoCore> core_;  // built by the learner for the env's spec
  HorizonClock clock_;
  int64_t frames_ = 0;                       // per run
  int64_t rounds_ = 0;                       // iterations run
  std::vector<IterationStats> round_stats_;  // [S] of the last round
  StageGraphs graphs_;
  Buffer<uint32_t> step_dev_;      // [1] the global step at the start of the next collect
  Buffer<float> obs_, final_obs_;  // [S·N, obs] the env's observations, and where the last actions led
  Buffer<uint8_t> send_;           // [S·N] session ends
  Buffer<int32_t> sid_;            // [S·N] session ids
};

// One run of a seed batch as a Learner of its own, for its TrainingRun: its iteration of each round, its
// evaluations and its checkpoint slice, as that run alone has them.
class SeedRunView : public Learner {
 public:
  SeedRunView(RolloutLearner& batch, int run) : batch_(batch), run_(run), frames_(batch.frames()) {}
  IterationStats iterate() override {
    const IterationStats st = batch_.iterate_run(run_, iterations_++);
    frames_ = st.frames;
    return st;
  }
  EvalStats evaluate(int64_t n_envs, int episodes_per_env, uint32_t seed, const EvalMode& mode = {}) override {
    return batch_.evaluate_run(run_, n_envs, episodes_per_env, seed, mode);
  }
  // this run's frames after its own iterations (the batch is ahead by a round while the others catch up)
  int64_t frames() const override { return frames_; }
  std::vector<std::string> eval_figure_names() const override { return batch_.eval_figure_names(); }
  void visit_state(StateVisitor& v) override { batch_.visit_run_state(v, run_); }
  Backend backend() const override { return batch_.backend(); }
  int64_t graph_replays() const override { return batch_.graph_replays(); }
  int64_t graphs_captured() const override { return batch_.graphs_captured(); }
  const int32_t* rollout_actions() const override { return batch_.rollout_actions(); }

 private:
  RolloutLearner& batch_;
  int run_;
  int64_t frames_;
  int64_t iterations_ = 0;
};

}  // namespace dyn
