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
  AdamConfig adam;  // lr 3e-4, eps 1e-8, max_grad_norm 0.5
};

struct IterationStats {
  int64_t frames = 0;       // env steps so far, all envs
  int64_t episodes = 0;     // episodes finished in this iteration's rollout
  double train_return = 0;  // their mean return (raw rewards); NaN when none finished
  double policy_loss = 0, value_loss = 0, entropy = 0, approx_kl = 0, clip_fraction = 0;
  double grad_norm = 0;                                  // before clipping, last minibatch
  double collect_s = 0, advantages_s = 0, update_s = 0;  // wall time of each stage (host clock)
};

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

  // The stages of iterate(), public only because CUDA extended lambdas may not live in private members.
  void collect(IterationStats& st);
  void advantages();
  void update(IterationStats& st);
  void policy_step(const float* obs_norm, int64_t n, bool deterministic, uint32_t step, int32_t* actions, float* logp,
                   float* values);

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
  MlpWorkspace<float> actor_ws_, critic_ws_;
  std::mt19937_64 shuffle_rng_;
  uint32_t step_ = 0;  // global env step counter (Philox counter word)
  int64_t frames_ = 0;

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
  Buffer<int32_t> perm_;  // [T · N]
  Buffer<float> mb_obs_, mb_old_logp_, mb_adv_, mb_ret_, mb_old_v_;
  Buffer<int32_t> mb_act_;
  Buffer<float> mb_logp_, mb_ent_, mb_glogp_, mb_gent_, mb_dlogits_, mb_dv_;
  Buffer<float> mb_terms_;   // [5, M]: policy, value, entropy, kl, clipped
  Buffer<float> scalars_;    // [8] device scalars (reductions)
  Buffer<double> term_acc_;  // [5] sums of the minibatch means of the loss terms
};

}  // namespace dyn
