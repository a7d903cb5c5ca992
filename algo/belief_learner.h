// DynaMITE-RL and VariBAD on the gridworld (`--algo dynamite|varibad`, SPEC §3): PPO on [s_t, μ_t, log σ²_t]
// with the belief model run online during rollouts (one encoder step per env step), a replay ring of recent whole
// episodes with their ground-truth sessions, and belief updates after each PPO update. Session handling at
// rollout time: the termination head's prediction (p > 0.5), or the ground truth with --oracle-sessions, closes a
// session and carries its final belief into the encoder's conditioning input.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "algo/belief_model.h"
#include "algo/ppo.h"

namespace dyn {

struct BeliefConfig {
  BeliefShape shape;              // shape.conditioning: the encoder sees the previous session's final belief
  BeliefLossConfig loss;          // which terms (DynaMITE defaults)
  bool oracle_sessions = false;   // ground-truth session ends in rollouts and evaluation
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

class GridBelief {
 public:
  GridBelief(Backend b, const GridParams& env, int64_t n_envs, const PpoConfig& cfg, const BeliefConfig& bc);
  IterationStats iterate();
  // Deterministic actions on fresh episodes, the belief updated online; also measures how often the reward
  // decoder, given the belief's mean, ranks the rewarding goal above the other (goal_accuracy()).
  EvalStats evaluate(int64_t n_envs, int episodes_per_env, uint32_t seed);
  double goal_accuracy() const { return goal_accuracy_; }
  int64_t frames() const { return frames_; }
  Backend backend() const { return b_; }
  int64_t graph_replays() const { return graphs_.replays() + core_.graph_replays(); }  // collect + core stages
  int64_t graphs_captured() const { return graphs_.captured() + core_.graphs_captured(); }
  // For tests: the actions [T, N] of the last collect (backend memory).
  const int32_t* rollout_actions() const { return core_.rollout_actions(); }

  // Stages (public only because CUDA extended lambdas may not live in private members).
  void collect(IterationStats& st);
  void advantages() { core_.advantages(); }
  void update(IterationStats& st);  // PPO update, then the belief steps
  void collect_steps();
  void belief_step(double* acc);  // one Adam step of the belief model on a replay batch; adds its loss terms to acc[5]
  // One online encoder step for n envs from the carried state, writing the policy's raw input [s, μ, log σ²]
  // into raw [n, 6 + 2d]; q stays in ws. h_out may alias h.
  void encode_step(EncoderWorkspace<float>& ws, const float* obs, const int32_t* prev_a, const float* prev_r,
                   const uint8_t* start, const float* cond, const float* h, int64_t n, float* h_out, float* raw);
  // After latent rows q [n] of the carried encoder: close[i] = the session ends here (predicted, or the ground
  // truth `send_prev` with oracle sessions; never at an episode start); counts true/false positives and
  // false negatives against the ground truth into counts[3]; carries closed beliefs into cond.
  void close_sessions(const float* q, const uint8_t* start, const uint8_t* send_prev, int64_t n, uint8_t* close,
                      float* cond, double* counts);
  void push_episodes();  // the assembled episodes of all envs into the replay ring (device head counter)
  // Replay slots (at most belief.batch_episodes; env i's first episode is slot i) gathered time-major into the
  // batch buffers; the view stays valid until the next gather.
  EpisodeBatchView<float> gather_episodes(const std::vector<int32_t>& slots);

  // For tests: the belief model and its parameters, and a backend buffer [T, N, 2d+1] that each collect fills
  // with the rollout's beliefs (set before the first iterate; nullptr: off).
  const BeliefModel<float>& model() const { return model_; }
  const float* belief_params() const { return bparams_.value.data(); }
  void trace_beliefs(float* q_trace) { q_trace_ = q_trace; }

 private:
  Backend b_;
  GridParams env_;
  int64_t n_;
  PpoConfig cfg_;
  BeliefConfig bc_;
  int H_, d_, in_dim_;
  PpoCore core_;
  RunningNorm in_norm_;  // over [s, μ, log σ²]
  HeadWorkspaces roll_ws_;
  ParamLayout blayout_;
  BeliefModel<float> model_;
  ParamBlob<float> bparams_;
  Adam<float> badam_;
  std::mt19937_64 sample_rng_;
  uint32_t step_ = 0, belief_steps_ = 0;
  int64_t frames_ = 0, replay_count_ = 0, pushed_ = 0;
  StageGraphs graphs_;
  Buffer<uint32_t> step_dev_;  // [1]
  double goal_accuracy_ = 0;
  float* q_trace_ = nullptr;

  // env and online belief state
  Buffer<GridState> state_;                                      // [N]
  Buffer<float> obs_, final_obs_;                                // [N, 6]
  Buffer<uint8_t> send_, send_prev_, start_, close_, no_start_;  // [N]
  Buffer<int32_t> sid_, prev_a_;                                 // [N]
  Buffer<float> prev_r_;                                         // [N]
  Buffer<float> h_, h_scratch_;                                  // [N, H]
  Buffer<float> cond_;                                           // [N, 2d]
  Buffer<float> raw_;                                            // [N, 6 + 2d]
  Buffer<double> term_counts_;  // [3] tp, fp, fn of predicted session ends this rollout
  EncoderWorkspace<float> roll_enc_, boot_enc_;
  // Whole episodes of E envs or slots: obs [H + 1, ·, 6] (encoder inputs s_0..s_H), land [H, ·, 6] (where each
  // action led), act / sid / rew / send [H, ·]; the order of the first two axes is the owner's.
  struct EpisodeArrays {
    Buffer<float> obs, land, rew;
    Buffer<int32_t> act, sid;
    Buffer<uint8_t> send;
    void allocate(Backend b, int64_t episodes, int horizon);
  };
  EpisodeArrays ep_;         // the episode being assembled, time-major [·, N]
  EpisodeArrays rp_;         // the replay ring, episode-major [C, ·]
  Buffer<int32_t> rp_head_;  // [1] next slot
  Buffer<int32_t> pick_;     // [B] replay slots
  EpisodeArrays bt_;         // one belief batch, time-major [·, B]
  BeliefLossWorkspace<float> lws_;
};

}  // namespace dyn
