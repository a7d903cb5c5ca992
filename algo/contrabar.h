// ContraBAR (Choshen & Tamar 2023) on any env (`--algo contrabar`, SPEC §3, prior-art §3): PPO on [s_t, h_t], where
// h_t is the CPC encoder's GRU state (algo/cpc_model.h) run online in the rollout — one encoder step per env step,
// carried across rollout chunks, restarted where an episode starts — with no gradient from the RL loss into it.
// Whole episodes go to the episode replay; after each PPO update, CPC steps on episodes sampled from it train the
// encoder (the reference: 30 steps of 25 trajectories on the gridworld, 1 of 20 on MuJoCo; Adam lr 1e-4 halved after
// 1200 steps). With seeds, a seed batch (algo/rollout_learner.h): S runs side by side, each with its own envs,
// normalisers, carried state, replay, sampling stream and CPC model part ([S, P] blobs); each rollout step is one
// batched encoder pass and one batched policy pass over the S·N rows, each CPC step one loss over every run's episodes
// (CpcModel::loss_runs) and one Adam step over [S, P]. Each run's figures are those of the run alone (bit for bit on
// the CPU).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

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
  // seeds: a seed batch's runs (empty: one run, env.seed; else seeds[0] must be env.seed).
  ContrabarLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg, const ContrabarConfig& cc,
                   const std::vector<uint32_t>& seeds = {});
  ~ContrabarLearner() override;
  std::unique_ptr<EvalAgent> eval_agent(int64_t n) override { return run_eval_agent(n, 0); }
  std::unique_ptr<EvalAgent> run_eval_agent(int64_t n, int run) override;
  void visit_run_state(StateVisitor& v, int run) override;
  void update(IterationStats& st) override { update_runs(&st); }

  // For tests: the model, run 0's parameters and the number of CPC steps taken (by each run).
  const CpcModel<float>& model() const { return model_; }
  const float* cpc_params() const { return cparams_.value.data(); }
  int64_t cpc_steps() const { return cpc_steps_; }

 private:
  class Agent;
  void collect_steps() override;
  void after_collect(IterationStats* st) override;  // the replays' host mirrors
  void update_runs(IterationStats* st) override;    // PPO update, then the CPC steps of every run
  // One CPC step of every run: each run's B episodes from its replay, the losses and gradients into the [S, P] blob
  // in one CpcModel::loss_runs; each run's stats.
  std::vector<CpcLossStats> cpc_losses();
  // One online encoder step for runs [run0, run0 + R), n envs each (the rows [R·n, ·]), from the previous action and
  // reward, the start flags and the state h [R·n, H] (new state into h_out, which may alias h); the policy's raw
  // input [s, h'] into raw [R·n, obs + H].
  void encode_step(CpcEncoderWorkspace<float>& ws, const float* obs, const ActionBatch& prev_a, const float* prev_r,
                   const uint8_t* start, const float* h, int64_t n, int run0, int R, float* h_out, float* raw,
                   float* obs_scratch);

  ContrabarConfig cc_;
  int in_dim_;
  RunNorms in_norms_;   // [S] over [s, h]
  RunNorms enc_norms_;  // [S] over s (cc.normalize_obs)
  PolicyWorkspace roll_ws_;
  ParamLayout clayout_;
  CpcModel<float> model_;
  ParamBlob<float> cparams_;  // [S, P]
  Adam<float> cadam_;
  std::vector<std::mt19937_64> sample_rngs_;  // [S]
  AgentCarry carry_;                          // S·N rows: previous action and reward, start, the GRU state
  EpisodeReplay replays_;                     // S runs' rings
  int64_t cpc_steps_ = 0;                     // per run (every run takes each step)

  Buffer<float> obs_enc_;     // [S·N, obs] the encoder's normalised observations
  Buffer<uint8_t> no_start_;  // [S·N] zeros (bootstrap steps continue the episode)
  Buffer<float> h_scratch_;   // [S·N, H]
  Buffer<float> raw_;         // [S·N, obs + H]
  CpcEncoderWorkspace<float> roll_enc_, boot_enc_;
  CpcLossWorkspace<float> lws_;
};

}  // namespace dyn
