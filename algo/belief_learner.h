// DynaMITE-RL and VariBAD on any env (`--algo dynamite|varibad`, SPEC §3): PPO on [s_t, μ_t, log σ²_t] with the
// belief model run online during rollouts (one encoder step per env step), the episode replay (algo/episode_replay.h)
// of recent whole episodes with their ground-truth sessions, and belief updates after each PPO update. Session
// handling at rollout time: the termination head's prediction (p > 0.5), or the ground truth with --oracle-sessions,
// closes a session and carries its final belief into the encoder's conditioning input. On the gridworld, each
// evaluation also measures how often the reward decoder, at the belief's mean, ranks the rewarding goal first.
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
  BeliefLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg, const BeliefConfig& bc);
  ~BeliefLearner() override;
  // Also eval_goal_accuracy in EvalStats::extra on the gridworld.
  std::unique_ptr<EvalAgent> eval_agent(int64_t n) override;
  // the gridworld's goal probe: how often the decoded best goal is the true one (the eval agent's add_figures)
  std::vector<std::string> eval_figure_names() const override {
    return spec().name == "gridworld" ? std::vector<std::string>{"eval_goal_accuracy"} : std::vector<std::string>{};
  }
  void visit_state(StateVisitor& v) override;
  void update(IterationStats& st) override;  // PPO update, then the belief steps

  // For tests: the belief model and its parameters; the replay's slots gathered time-major (env i's first episode
  // is slot i), normalised as the belief steps see them; and a backend buffer [T, N, 2d+1] that each collect fills
  // with the rollout's beliefs (set before the first iterate; nullptr: off).
  const BeliefModel<float>& model() const { return model_; }
  const float* belief_params() const { return bparams_.value.data(); }
  EpisodeBatchView<float> gather_episodes(const std::vector<int32_t>& slots);
  void trace_beliefs(float* q_trace) { q_trace_ = q_trace; }

 private:
  class Agent;
  void collect_steps() override;
  void after_collect(IterationStats& st) override;  // the replay's host mirror, the termination head's counts
  void belief_step(double* acc);
  // One online encoder step for n envs from the given previous action and reward, start flags, conditioning
  // input and state h [n, H] (new state into h_out, which may alias h); the policy's raw input [s, μ, log σ²] into
  // raw [n, obs + 2d]; q stays in ws.
  void encode_step(EncoderWorkspace<float>& ws, const float* obs, const ActionBatch& prev_a, const float* prev_r,
                   const uint8_t* start, const float* cond, const float* h, int64_t n, float* h_out, float* raw,
                   float* obs_scratch);
  // After latent rows q [n]: close[i] = the session ends here (predicted, or the ground truth send_prev with oracle
  // sessions; never at an episode start); counts true/false positives and false negatives of the head against the
  // ground truth into counts[3] unless nullptr; carries closed beliefs into cond.
  void close_sessions(const float* q, const uint8_t* start, const uint8_t* send_prev, int64_t n, uint8_t* close,
                      float* cond, double* counts);

  BeliefConfig bc_;
  int d_, in_dim_;
  RunningNorm in_norm_;   // over [s, μ, log σ²]
  RunningNorm enc_norm_;  // over s (bc.normalize_obs)
  PolicyWorkspace roll_ws_;
  ParamLayout blayout_;
  BeliefModel<float> model_;
  ParamBlob<float> bparams_;
  Adam<float> badam_;
  std::mt19937_64 sample_rng_;
  AgentCarry carry_;  // previous action and reward, start, GRU state, conditioning input
  EpisodeReplay replay_;
  uint32_t belief_steps_ = 0;
  float* q_trace_ = nullptr;

  Buffer<float> obs_enc_;                         // [N, obs] the encoder's normalised observations
  Buffer<uint8_t> send_prev_, close_, no_start_;  // [N]
  Buffer<float> h_scratch_;                       // [N, H]
  Buffer<float> raw_;                             // [N, obs + 2d]
  Buffer<double> term_counts_;                    // [3] tp, fp, fn of predicted session ends this rollout
  EncoderWorkspace<float> roll_enc_, boot_enc_;
  BeliefLossWorkspace<float> lws_;
};

}  // namespace dyn
