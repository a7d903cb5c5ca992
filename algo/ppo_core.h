// PpoCore: the PPO machinery of every learner (SPEC §4) over any env — the policy (separate actor and critic MLPs
// 2 × 128 ReLU on the step input, or, recurrent as RL², on a GRU's state over an embedding of it), the action head
// from the env spec (categorical or diagonal Gaussian, algo/policy_head.h), the rollout storage [T, N, ·], reward
// scaling by the running std of the discounted return, truncation-aware GAE with advantage normalisation, and the
// update: epochs × shuffled minibatches (of samples, or of whole env sequences with BPTT for a recurrent policy;
// shuffles drawn on the backend, identical on CPU and GPU), global grad-norm clipping and Adam. The advantages and
// the update run as CUDA Graphs on the GPU. A learner owns the env and what the policy sees, fills step t's inputs,
// actions, values and rewards through the accessors, and calls the stages.
//
// A seed batch: S runs side by side, each with its own parameters (one [S, P] blob, one Adam
// over it), reward scale, episode statistics and shuffles. The rollout is time-major over S·N columns (run s's envs
// at [s·N, (s+1)·N)), so a step's policy is one batched pass over S·N rows; at the rollout's end it is rearranged
// seed-major [S, T, N, ·], after which run s's reward scale, advantages and minibatches are its rollout alone —
// its figures are that run's alone, bit for bit on the CPU. The networks run as one strided-batched pass over the
// runs' minibatches [S, M, ·] (recurrent: the GRU over the runs' sequences [S, T, Nm, ·], Gru::forward_seeds); the
// per-run pieces between them (sampling, the head, the loss terms, the sums) are a call per run on its block.
#pragma once

#include <cstdint>
#include <vector>

#include "algo/episode_stats.h"
#include "algo/minibatch.h"
#include "algo/policy_head.h"
#include "algo/ppo_config.h"
#include "kernels/shuffle.h"

namespace dyn {

// What the policy reads and how.
struct PolicyShape {
  int in_dim = 0;  // the per-step input: the normalised state [+ belief or latent]; RL²: [s, a_{t−1}, r_{t−1}]
  bool recurrent = false;  // RL²: Linear(in → embed) + ReLU → GRU(rnn_hidden) → the actor and the critic
  int embed = 24, rnn_hidden = 64;
};

// One policy step for n envs (PpoCore::policy_step); the outputs are optional (nullptr: not wanted).
struct PolicyStep {
  const float* in = nullptr;  // [n, in]
  int64_t n = 0;
  const uint8_t* start = nullptr;  // recurrent: [n] the state restarts here (nullptr: never)
  const float* h = nullptr;        // recurrent: [n, H] the state before the step
  float* h_out = nullptr;          // recurrent: [n, H] the state after it (may alias h)
  bool deterministic = false;      // the mode instead of a sample
  uint32_t seed = 0;               // the samples' Philox seed (one run; a seed batch samples run r with its own)
  int runs = 1, run = 0;           // the rows are runs [run, run + runs) of a seed batch, n / runs each, seed-major
  StepRef step = 0;                // the Philox step of the sample
  uint32_t first_env = 0;   // the global index of row 0 (the samples' Philox env index: a data-parallel rank's share)
  ActionBuffers actions;    // [n] or [n, A]
  float* logp = nullptr;    // [n]
  float* values = nullptr;  // [n]

  // The mode of the action distribution (evaluation; no sample drawn).
  static PolicyStep mode(const float* in, int64_t n, const ActionBuffers& actions) {
    PolicyStep s;
    s.in = in;
    s.n = n;
    s.deterministic = true;
    s.actions = actions;
    return s;
  }
  // The value alone (bootstrap values).
  static PolicyStep value_of(const float* in, int64_t n, float* values) {
    PolicyStep s;
    s.in = in;
    s.n = n;
    s.values = values;
    return s;
  }
};

class PpoCore {
 public:
  // first_env: the global index of the first of the n_envs envs (a data-parallel rank's share; keys the per-env
  // shuffles of train.shuffle = per_env).
  PpoCore(Backend b, const EnvSpec& env, const PolicyShape& shape, int64_t n_envs, const PpoConfig& cfg, uint32_t seed,
          uint32_t first_env = 0);
  // A seed batch: run s initialised and shuffled with seeds[s], n_envs envs each.
  PpoCore(Backend b, const EnvSpec& env, const PolicyShape& shape, int64_t n_envs, const PpoConfig& cfg,
          const std::vector<uint32_t>& seeds, uint32_t first_env = 0);
  int runs() const { return int(seeds_.size()); }
  const uint32_t* seeds_dev() const { return seeds_dev_.data(); }  // [S] the runs' seeds in backend memory
  int64_t graph_replays() const { return graphs_.replays(); }      // advantages and update graph launches
  int64_t graphs_captured() const { return graphs_.captured(); }   // of those two stages
  const PolicyShape& shape() const { return shape_; }
  const PolicyHead& head() const { return head_; }
  const float* params() const { return params_.value.data(); }

  // Rollout storage, time-major; C = S·N columns (N for one run).
  float* input(int t) { return in_buf_.data() + int64_t(t) * cols_ * shape_.in_dim; }  // [C, in]
  ActionBuffers action(int t);                                                         // [C] or [C, A]
  float* log_prob(int t) { return logp_buf_.data() + int64_t(t) * cols_; }             // [C]
  float* value(int t) { return val_buf_.data() + int64_t(t) * cols_; }              // [C] (t = T: the bootstrap value)
  float* final_value(int t) { return final_val_buf_.data() + int64_t(t) * cols_; }  // [C] V(final obs) at a time limit
  float* reward(int t) { return rew_buf_.data() + int64_t(t) * cols_; }             // [C] raw, scaled by finish_rollout
  uint8_t* truncated(int t) { return trunc_buf_.data() + int64_t(t) * cols_; }
  uint8_t* terminated(int t) { return term_buf_.data() + int64_t(t) * cols_; }
  uint8_t* restart(int t) { return reset_buf_.data() + int64_t(t) * cols_; }  // recurrent: [C] the state restarted
  float* h0() { return h0_buf_.data(); }                                // recurrent: [C, H] at the rollout's start
  const int32_t* rollout_actions() const { return act_index_.data(); }  // [T, N] discrete (tests)
  ActionBatch rollout_action_batch() const { return {act_index_.data(), act_value_.data()}; }

  // Actions, log-probabilities, values and (recurrent) the next state for one step of n envs.
  void policy_step(PolicyWorkspace& ws, const PolicyStep& s);

  // Start of a collect: clears the finished-episode statistics.
  void begin_rollout();
  // After env step t has written reward(t), truncated(t), terminated(t) (and the session ids, for the statistics):
  // the reward scale's discounted return and the episode statistics.
  void track_step(int t, const int32_t* session_id);
  // After the last step (value(T) written): rewards ← rewards / running std of the discounted return, ±10.
  void finish_rollout();
  // Each run's episodes that finished in this rollout (one read).
  std::vector<EvalStats> rollout_stats() const { return episodes_.summaries(); }
  void advantages();
  // The update; its loss statistics into st[0..runs()).
  void update(IterationStats* st);
  void update(IterationStats& st) { update(&st); }
  // Run `run`'s policy parameters (each layer a named array), Adam, the reward scale, the episode statistics, the
  // shuffle draw counter, the discounted returns and (recurrent) the state at the rollout's start: in a seed batch,
  // exactly the arrays that run alone has.
  void visit_state(StateVisitor& v, int run = 0);

 private:
  void draw_epoch_orders();   // (captured) every epoch's order of the items into perm_, by the config's plan
  void update_minibatches();  // (captured)
  void to_seed_major();       // the rollout [T, S·N, ·] → run blocks [S, T, N, ·] (a seed batch)
  // Run s's block of a rollout array with `per_run` values per run: seed-major in a seed batch, the array itself
  // for one run.
  template <class T>
  T* block(Buffer<T>& time_major, Buffer<T>& seed_major, int s, int64_t per_run) {
    return seeds_.size() == 1 ? time_major.data() : seed_major.data() + s * per_run;
  }

  Backend b_;
  EnvSpec env_;
  PolicyShape shape_;
  int64_t n_;     // envs per run
  int64_t cols_;  // the rollout's columns: S·N
  PpoConfig cfg_;
  ParamLayout layout_;
  Mlp embed_, actor_, critic_;
  Gru gru_;
  PolicyHead head_;
  ParamBlob<float> params_;
  Adam<float> adam_;
  RunNorms ret_norms_;     // [S] the reward scale's discounted-return statistics
  EpisodeStats episodes_;  // [S·N]
  PolicyWorkspace upd_ws_;
  std::vector<uint32_t> seeds_;  // [S]
  Buffer<uint32_t> seeds_dev_;   // [S] the same in backend memory (a seed batch's samples' keys)
  uint32_t first_env_;
  MinibatchPlan plan_;           // over the T·N samples, or over the N env sequences (recurrent)
  PermutationSampler shuffler_;  // [S, epochs] permutations of plan_.items (train.shuffle = global)
  StageGraphs graphs_;
  Buffer<uint32_t> draws_;     // [S] permutations drawn so far (the shuffles' Philox draw number)
  Buffer<float> disc_ret_;     // [C] discounted return for the reward scale
  Buffer<float> in_buf_;       // [T, C, in]
  Buffer<int32_t> act_index_;  // [T, C] discrete
  Buffer<float> act_value_;    // [T, C, A] continuous
  Buffer<float> logp_buf_, final_val_buf_, rew_buf_, disc_buf_;  // [T, C]
  Buffer<float> val_buf_;                                        // [T + 1, C]
  Buffer<uint8_t> trunc_buf_, term_buf_, reset_buf_;             // [T, C] (reset: recurrent)
  Buffer<float> adv_buf_, ret_buf_;                              // [S, T, N]
  // a seed batch's rollout rearranged by run (to_seed_major): [S, T, N, ·], values [S, T + 1, N]; empty for one run
  Buffer<float> sm_in_, sm_act_value_, sm_logp_, sm_final_val_, sm_rew_, sm_disc_, sm_val_;
  Buffer<int32_t> sm_act_index_;
  Buffer<uint8_t> sm_trunc_, sm_term_, sm_reset_;
  Buffer<float> h0_buf_;  // [C, H] = [S, N, H]
  Buffer<int32_t> perm_;  // [S, epochs, T·N] or [epochs, N] this update's orders, drawn on the backend
  // a minibatch of M samples of each run: [S, M, ·] (recurrent: [S, T, Nm, ·], M = T·Nm; h0 [S, Nm, H])
  Buffer<float> mb_in_, mb_old_logp_, mb_adv_, mb_ret_, mb_old_v_, mb_h0_;
  Buffer<int32_t> mb_act_index_;
  Buffer<float> mb_act_value_;
  Buffer<uint8_t> mb_reset_;
  Buffer<float> mb_logp_, mb_ent_, mb_glogp_, mb_gent_, mb_dout_, mb_dhead_, mb_dv_, mb_dfeat_, mb_dembed_;
  Buffer<float> mb_terms_;   // [S, 5, M]: policy, value, entropy, kl, clipped
  Buffer<float> scalars_;    // [2 + 5S] device scalars (reductions)
  Buffer<double> term_acc_;  // [S, 5] sums of the minibatch means of the loss terms
};

}  // namespace dyn
