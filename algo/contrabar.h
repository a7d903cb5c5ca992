// ContraBAR (Choshen & Tamar 2023) on any env (`--algo contrabar`, SPEC §3, prior-art §3): PPO on [s_t, h_t], where
// h_t is the CPC encoder's GRU state (algo/cpc_model.h) run online in the rollout — one encoder step per env step,
// carried across rollout chunks, restarted where an episode starts — with no gradient from the RL loss into it.
// Whole episodes go to the episode replay; after each PPO update, CPC steps on episodes sampled from it train the
// encoder (the reference: 30 steps of 25 trajectories on the gridworld, 1 of 20 on MuJoCo; Adam lr 1e-4 halved after
// 1200 steps).
#pragma once

#include <cstdint>
#include <random>

#include "algo/agent_carry.h"
#include "algo/cpc_model.h"
#include "algo/episode_replay.h"
#include "algo/rollout_learner.h"
#include "algo/running_norm.h"

namespace dyn {

struct ContrabarConfig {
  CpcShape shape;                                     // the env's sizes are filled in by the learner
  bool normalize_obs = false;                         // the encoder sees running-normalised observations
  int replay_episodes = 10000;                        // ring of the most recent whole episodes
  int batch_episodes = 25;                            // trajectories per CPC step
  int updates_per_iteration = 30;                     // CPC steps after each PPO update
  int lr_halve_after = 1200;                          // CPC steps before the learning rate halves (0: never)
  AdamConfig adam{1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f};  // max_grad_norm 0: no clipping (gridworld; MuJoCo 1)
};

class ContrabarLearner : public RolloutLearner {
 public:
  ContrabarLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg, const ContrabarConfig& cc);
  ~ContrabarLearner() override;
  std::unique_ptr<EvalAgent> eval_agent(int64_t n) override;
  void visit_state(StateVisitor& v) override;
  void update(IterationStats& st) override;  // PPO update, then the CPC steps

  // For tests: the model, its parameters and the number of CPC steps taken.
  const CpcModel<float>& model() const { return model_; }
  const float* cpc_params() const { return cparams_.value.data(); }
  int64_t cpc_steps() const { return cpc_steps_; }

 private:
  class Agent;
  void collect_steps() override;
  void after_collect(IterationStats* st) override;  // the replay's host mirror
  CpcLossStats cpc_step();
  // One online encoder step for n envs from the previous action and reward, the start flags and the state h [n, H]
  // (new state into h_out, which may alias h); the policy's raw input [s, h'] into raw [n, obs + H].
  void encode_step(CpcEncoderWorkspace<float>& ws, const float* obs, const ActionBatch& prev_a, const float* prev_r,
                   const uint8_t* start, const float* h, int64_t n, float* h_out, float* raw, float* obs_scratch);

  ContrabarConfig cc_;
  int in_dim_;
  RunningNorm in_norm_;   // over [s, h]
  RunningNorm enc_norm_;  // over s (cc.normalize_obs)
  PolicyWorkspace roll_ws_;
  ParamLayout clayout_;
  CpcModel<float> model_;
  ParamBlob<float> cparams_;
  Adam<float> cadam_;
  std::mt19937_64 sample_rng_;
  AgentCarry carry_;  // previous action and reward, start, the GRU state
  EpisodeReplay replay_;
  int64_t cpc_steps_ = 0;

  Buffer<float> obs_enc_;     // [N, obs] the encoder's normalised observations
  Buffer<uint8_t> no_start_;  // [N] zeros (bootstrap steps continue the episode)
  Buffer<float> h_scratch_;   // [N, H]
  Buffer<float> raw_;         // [N, obs + H]
  CpcEncoderWorkspace<float> roll_enc_, boot_enc_;
  CpcLossWorkspace<float> lws_;
};

}  // namespace dyn
