// DynaMITE-RL and VariBAD on any env (`--algo dynamite|varibad`, SPEC §3): PPO on [s_t, μ_t, log σ²_t] with the
// belief model run online during rollouts (one encoder step per env step), the episode replay (algo/episode_replay.h)
// of recent whole episodes with their ground-truth sessions, and belief updates after each PPO update. Session
// handling at rollout time: the termination head's prediction (p > 0.5), or the ground truth with --oracle-sessions,
// closes a session and carries its final belief into the encoder's conditioning input. On the gridworld, each
// evaluation also measures how often the reward decoder, at the belief's mean, ranks the rewarding goal first.
// With seeds, a seed batch (algo/rollout_learner.h): S runs side by side, each with its own envs, normalisers,
// carried state, replay, sampling stream and belief model part ([S, P] blobs); each rollout step is one batched
// encoder pass and one batched policy pass over the S·N rows, each belief step one loss over every run's episodes
// (belief_loss_runs) and one Adam step over [S, P]. Each run's figures are those of the run alone (bit for bit on the
// CPU).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "algo/agent_carry.h"
#include "algo/belief_model.h"
#include "algo/episode_replay.h"
#include "algo/rollout_learner.h"
#include "algo/running_norm.h"

namespace dyn {

struct BeliefConfig {
  BeliefShape shape;              // the env's sizes are filled in by the learner; shape.conditioning: the encoder
                                  // sees the previous session's final belief
  BeliefLossConfig loss;          // which terms (DynaMITE defaults), subsampling
  bool oracle_sessions = false;   // ground-truth session ends in rollouts and evaluation
  bool normalize_obs = false;     // the encoder and decoders see running-normalised observations
  int replay_episodes = 10000;    // ring of the most recent whole episodes
  int batch_episodes = 25;        // episodes per belief step
  int updates_per_iteration = 3;  // belief steps after each PPO update
  AdamConfig adam{3e-4f, 0.9f, 0.999f, 1e-8f, 0.0f};  // lr 3e-4, no gradient clipping (VariBAD's gridworld)
  static BeliefConfig dynamite() { return {}; }
  static BeliefConfig varibad() {
    BeliefConfig c;
    c.shape.conditioning = false;
    c.loss = BeliefLossConfig::varibad();
    return c;
  }
};

class BeliefLearner : public RolloutLearner {
 public:
  // seeds: a seed batch's runs (empty: one run, env.seed; else seeds[0] must be env.seed).
  BeliefLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg, const BeliefConfig& bc,
                const std::vector<uint32_t>& seeds = {});
  ~BeliefLearner() override;
  // Also eval_goal_accuracy in EvalStats::extra on the gridworld.
  std::unique_ptr<EvalAgent> eval_agent(int64_t n) override { return run_eval_agent(n, 0); }
  std::unique_ptr<EvalAgent> run_eval_agent(int64_t n, int run) override;
  // the gridworld's goal probe: how often the decoded best goal is the true one (the eval agent's add_figures)
  std::vector<std::string> eval_figure_names() const override {
    return spec().name == "gridworld" ? std::vector<std::string>{"eval_goal_accuracy"} : std::vector<std::string>{};
  }
  void visit_run_state(StateVisitor& v, int run) override;
  void update(IterationStats& st) override { update_runs(&st); }

  // For tests: the belief model and run 0's parameters; run 0's replay slots gathered time-major (env i's first
  // episode is slot i), normalised as the belief steps see them; and a backend buffer [T, S·N, 2d+1] that each
  // collect fills with the rollout's beliefs (set before the first iterate; nullptr: off).
  const BeliefModel<float>& model() const { return model_; }
  const float* belief_params() const { return bparams_.value.data(); }
  EpisodeBatchView<float> gather_episodes(const std::vector<int32_t>& slots, int run = 0);
  void trace_beliefs(float* q_trace) { q_trace_ = q_trace; }

 private:
  class Agent;
  void collect_steps() override;
  void after_collect(IterationStats* st) override;  // the replays' host mirrors, the termination head's counts
  void update_runs(IterationStats* st) override;    // PPO update, then the belief steps of every run
  // Each run's slots gathered seed-major (EpisodeReplay::gather), normalised as the belief steps see them.
  EpisodeBatchView<float> gather_runs(const std::vector<std::vector<int32_t>>& slots);
  // One belief step of every run: each run's B episodes from its replay, the losses and gradients into the [S, P]
  // blob in one belief_loss_runs; run r's loss terms into acc [S, 5] row r.
  void belief_losses(double* acc);
  // One online encoder step for runs [run0, run0 + R), n envs each (the rows [R·n, ·]), from the given previous
  // action and reward, start flags, conditioning input and state h [R·n, H] (new state into h_out, which may alias
  // h); the policy's raw input [s, μ, log σ²] into raw [R·n, obs + 2d]; q stays in ws.
  void encode_step(EncoderWorkspace<float>& ws, const float* obs, const ActionBatch& prev_a, const float* prev_r,
                   const uint8_t* start, const float* cond, const float* h, int64_t n, int run0, int R, float* h_out,
                   float* raw, float* obs_scratch);
  // After latent rows q [R·n]: close[i] = the session ends here (predicted, or the ground truth send_prev with
  // oracle sessions; never at an episode start); counts true/false positives and false negatives of the head against
  // the ground truth into counts [R, 3] (run by run) unless nullptr; carries closed beliefs into cond.
  void close_sessions(const float* q, const uint8_t* start, const uint8_t* send_prev, int64_t n, int R, uint8_t* close,
                      float* cond, double* counts);

  BeliefConfig bc_;
  int d_, in_dim_;
  RunNorms in_norms_;   // [S] over [s, μ, log σ²]
  RunNorms enc_norms_;  // [S] over s (bc.normalize_obs)
  PolicyWorkspace roll_ws_;
  ParamLayout blayout_;
  BeliefModel<float> model_;
  ParamBlob<float> bparams_;  // [S, P]
  Adam<float> badam_;
  std::vector<std::mt19937_64> sample_rngs_;  // [S]
  AgentCarry carry_;           // S·N rows: previous action and reward, start, GRU state, conditioning input
  EpisodeReplay replays_;      // S runs' rings
  uint32_t belief_steps_ = 0;  // per run (every run takes each step)
  float* q_trace_ = nullptr;

  Buffer<float> obs_enc_;                         // [S·N, obs] the encoder's normalised observations
  Buffer<uint8_t> send_prev_, close_, no_start_;  // [S·N]
  Buffer<float> h_scratch_;                       // [S·N, H]
  Buffer<float> raw_;                             // [S·N, obs + 2d]
  Buffer<double> term_counts_;                    // [S, 3] tp, fp, fn of predicted session ends this rollout
  EncoderWorkspace<float> roll_enc_, boot_enc_;
  BeliefLossWorkspace<float> lws_;
};

}  // namespace dyn
