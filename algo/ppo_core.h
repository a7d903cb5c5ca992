// PpoCore: the PPO machinery of a feed-forward policy over any input (SPEC §4) — separate actor and critic MLPs
// (2 × 128 ReLU) with a categorical head, the rollout storage [T, N, ·], reward scaling by the running std of the
// discounted return, truncation-aware GAE with advantage normalisation, and the epochs × shuffled minibatches
// update with global grad-norm clipping and Adam. The advantages and the update run as CUDA Graphs on the GPU.
// A learner owns the env and what the policy sees (GridPpo: the state; GridBelief: the state and the belief) and
// fills step t's inputs, actions, values and rewards through the accessors below.
#pragma once

#include <cstdint>

#include "algo/ppo_config.h"
#include "kernels/shuffle.h"

namespace dyn {

class PpoCore {
 public:
  PpoCore(Backend b, int in_dim, int actions, int64_t n_envs, const PpoConfig& cfg, uint32_t seed);
  int64_t graph_replays() const { return graphs_.replays(); }         // advantages and update graph launches
  int64_t graphs_captured() const { return graphs_.captured(); }      // of those two stages
  const int32_t* rollout_actions() const { return act_buf_.data(); }  // [T, N] of the last collect (backend)

  // Rollout storage, time-major.
  float* input(int t) { return in_buf_.data() + int64_t(t) * n_ * in_; }         // [N, in] normalised policy inputs
  int32_t* action(int t) { return act_buf_.data() + int64_t(t) * n_; }           // [N]
  float* log_prob(int t) { return logp_buf_.data() + int64_t(t) * n_; }          // [N]
  float* value(int t) { return val_buf_.data() + int64_t(t) * n_; }              // [N] (t = T: the bootstrap value)
  float* final_value(int t) { return final_val_buf_.data() + int64_t(t) * n_; }  // [N] V(final obs) at a time limit
  float* reward(int t) { return rew_buf_.data() + int64_t(t) * n_; }             // [N] raw, scaled by finish_rollout
  uint8_t* truncated(int t) { return trunc_buf_.data() + int64_t(t) * n_; }
  uint8_t* terminated(int t) { return term_buf_.data() + int64_t(t) * n_; }

  // Actions (sampled, or the mode when deterministic), their log-probabilities and values for inputs [n, in];
  // logp and values may be nullptr. ws: the caller's workspaces for this kind of pass.
  void act(HeadWorkspaces& ws, const float* in, int64_t n, bool deterministic, uint32_t seed, StepRef step,
           int32_t* actions, float* logp, float* values);
  // V(in) for inputs [n, in] into values [n].
  void values(HeadWorkspaces& ws, const float* in, int64_t n, float* values);

  // Start of a collect: clears the finished-episode statistics.
  void begin_rollout();
  // After env step t has written reward(t), truncated(t), terminated(t): the reward scale's discounted return
  // and the raw episode returns.
  void track_step(int t);
  // After the last step (value(T) written): rewards ← rewards / running std of the discounted return, ±10.
  void finish_rollout();
  // Mean return and count of the episodes that finished in this rollout (one read).
  double rollout_return(int64_t* episodes) const;
  void advantages();
  void update(IterationStats& st);
  void update_minibatches();  // (captured) public only because CUDA extended lambdas may not be private

 private:
  Backend b_;
  int in_, actions_;
  int64_t n_;
  PpoConfig cfg_;
  ParamLayout layout_;
  Mlp actor_, critic_;
  ParamBlob<float> params_;
  Adam<float> adam_;
  RunningNorm ret_norm_;
  HeadWorkspaces upd_ws_;
  uint32_t seed_;
  PermutationSampler shuffler_;  // over the T·N samples
  StageGraphs graphs_;
  Buffer<uint32_t> draws_;           // [1] permutations drawn so far (the shuffles' Philox draw number)
  Buffer<float> disc_ret_, ep_ret_;  // [N] discounted return for the reward scale; raw return of the episode
  Buffer<double> episode_sums_;      // [N, 2]: return sum, count
  Buffer<float> in_buf_;             // [T, N, in]
  Buffer<int32_t> act_buf_;          // [T, N]
  Buffer<float> logp_buf_, final_val_buf_, rew_buf_, disc_buf_, adv_buf_, ret_buf_;  // [T, N]
  Buffer<float> val_buf_;                                                            // [T + 1, N]
  Buffer<uint8_t> trunc_buf_, term_buf_;                                             // [T, N]
  Buffer<int32_t> perm_;  // [epochs, T · N] this update's shuffles, drawn on the backend
  Buffer<float> mb_in_, mb_old_logp_, mb_adv_, mb_ret_, mb_old_v_;
  Buffer<int32_t> mb_act_;
  Buffer<float> mb_logp_, mb_ent_, mb_glogp_, mb_gent_, mb_dlogits_, mb_dv_;
  Buffer<float> mb_terms_;   // [5, M]: policy, value, entropy, kl, clipped
  Buffer<float> scalars_;    // [8] device scalars (reductions)
  Buffer<double> term_acc_;  // [5] sums of the minibatch means of the loss terms
};

}  // namespace dyn
