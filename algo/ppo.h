// PPO on the gridworld (SPEC §4), state-only policy (`--algo ppo`): separate actor and critic MLPs (2 × 128 ReLU),
// a categorical head, running input normalisation and reward scaling, truncation-aware GAE, advantage
// normalisation, epochs × shuffled minibatches, global grad-norm clipping and Adam. Every buffer lives on the
// backend; the host reads back a handful of scalars per iteration for logging.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "algo/ppo_common.h"
#include "algo/running_norm.h"
#include "kernels/buffer.h"
#include "kernels/graph.h"
#include "kernels/step_ref.h"
#include "nn/adam.h"
#include "nn/mlp.h"
#include "sim/gridworld.h"

namespace dyn {

struct PpoConfig {
  int rollout_steps = 60;  // T per iteration
  int epochs = 2, minibatches = 4;
  float gamma = 0.99f, gae_lambda = 0.95f;
  float clip = 0.2f, vf_coef = 0.5f, entropy_coef = 0.01f;
  int hidden = 128;
  AdamConfig adam;          // lr 3e-4, eps 1e-8, max_grad_norm 0.5
  bool cuda_graphs = true;  // CUDA backend: replay collect, advantages and update as captured graphs
};

// Stage keys of StageGraphs: a collect is keyed by its phase within the horizon (which steps bootstrap a time
// limit), the other stages have one graph each.
constexpr int64_t kGraphAdvantages = -1, kGraphUpdate = -2;

// The actor's and critic's activations for one kind of pass (rollout, update, evaluation): each captured stage
// keeps its own, so no stage reallocates buffers another stage's graph points at.
struct HeadWorkspaces {
  MlpWorkspace<float> actor, critic;
};

struct IterationStats {
  int64_t frames = 0;       // env steps so far, all envs
  int64_t episodes = 0;     // episodes finished in this iteration's rollout
  double train_return = 0;  // their mean return (raw rewards); NaN when none finished
  double policy_loss = 0, value_loss = 0, entropy = 0, approx_kl = 0, clip_fraction = 0;
  double grad_norm = 0;                                  // before clipping, last minibatch
  double collect_s = 0, advantages_s = 0, update_s = 0;  // wall time of each stage (host clock)
};

// Every epoch's shuffle of [0, n), drawn on the host with `rng` and uploaded as perm [epochs, n] before an
// update's (captured) minibatch loop.
void upload_shuffles(std::mt19937_64& rng, int epochs, int64_t n, Buffer<int32_t>& perm);

// An update's loss statistics: the means over `updates` minibatches of the sums in term_acc [5] (one read).
void read_update_stats(const Buffer<double>& term_acc, int updates, double grad_norm, IterationStats& st);

// Runs collect → advantages → update on a learner with those stages (GridPpo, GridRl2), timing each.
template <class Learner>
IterationStats timed_iteration(Learner& learner) {
  using clock = std::chrono::steady_clock;
  IterationStats st;
  const auto t0 = clock::now();
  learner.collect(st);  // ends with a read of the episode statistics: the backend is idle here
  const auto t1 = clock::now();
  learner.advantages();
  synchronize(learner.backend());
  const auto t2 = clock::now();
  learner.update(st);  // ends with a read of the loss statistics
  const auto t3 = clock::now();
  st.collect_s = std::chrono::duration<double>(t1 - t0).count();
  st.advantages_s = std::chrono::duration<double>(t2 - t1).count();
  st.update_s = std::chrono::duration<double>(t3 - t2).count();
  st.frames = learner.frames();
  return st;
}

class GridPpo {
 public:
  GridPpo(Backend b, const GridParams& env, int64_t n_envs, const PpoConfig& cfg);
  IterationStats iterate();
  // Deterministic (mode) actions on fresh episodes drawn with `seed`, normalised with the current statistics.
  EvalStats evaluate(int64_t n_envs, int episodes_per_env, uint32_t seed);
  int64_t frames() const { return frames_; }
  Backend backend() const { return b_; }

  int64_t graph_replays() const { return graphs_.replays(); }

  // The stages of iterate(), public only because CUDA extended lambdas may not live in private members.
  void collect(IterationStats& st);
  void advantages();
  void update(IterationStats& st);
  void collect_steps();       // the T env steps of a collect (captured)
  void update_minibatches();  // epochs × minibatches over the uploaded permutations (captured)
  void policy_step(HeadWorkspaces& ws, const float* obs_norm, int64_t n, bool deterministic, StepRef step,
                   int32_t* actions, float* logp, float* values);

 private:
  Backend b_;
  GridParams env_;
  int64_t n_;
  PpoConfig cfg_;
  ParamLayout layout_;
  Mlp actor_, critic_;
  ParamBlob<float> params_;
  Adam<float> adam_;
  RunningNorm obs_norm_, ret_norm_;
  HeadWorkspaces roll_ws_, upd_ws_;  // rollout and update passes
  std::mt19937_64 shuffle_rng_;
  uint32_t step_ = 0;  // global env step counter (Philox counter word), host mirror of step_dev_
  int64_t frames_ = 0;
  StageGraphs graphs_;
  Buffer<uint32_t> step_dev_;  // [1] the global step at the start of the next collect

  // env
  Buffer<GridState> state_;        // [N]
  Buffer<float> obs_, final_obs_;  // [N, 6]
  Buffer<float> disc_ret_;         // [N] discounted return for the reward scale
  Buffer<float> ep_ret_;           // [N] raw return of the running episode
  // rollout, time-major
  Buffer<float> obs_buf_;                            // [T, N, 6] normalised
  Buffer<int32_t> act_buf_;                          // [T, N]
  Buffer<float> logp_buf_;                           // [T, N]
  Buffer<float> val_buf_;                            // [T + 1, N]
  Buffer<float> final_val_buf_;                      // [T, N]
  Buffer<float> rew_buf_;                            // [T, N] raw, then scaled
  Buffer<float> disc_buf_;                           // [T, N] discounted returns seen by the reward scale
  Buffer<uint8_t> trunc_buf_, term_buf_, send_buf_;  // [T, N]
  Buffer<int32_t> sid_buf_;                          // [T, N]
  Buffer<float> adv_buf_, ret_buf_;                  // [T, N]
  Buffer<double> episode_sums_;                      // [N, 2]: return sum, count
  // minibatch
  Buffer<int32_t> perm_;  // [epochs, T · N] this update's shuffles
  Buffer<float> mb_obs_, mb_old_logp_, mb_adv_, mb_ret_, mb_old_v_;
  Buffer<int32_t> mb_act_;
  Buffer<float> mb_logp_, mb_ent_, mb_glogp_, mb_gent_, mb_dlogits_, mb_dv_;
  Buffer<float> mb_terms_;   // [5, M]: policy, value, entropy, kl, clipped
  Buffer<float> scalars_;    // [8] device scalars (reductions)
  Buffer<double> term_acc_;  // [5] sums of the minibatch means of the loss terms
};

}  // namespace dyn
