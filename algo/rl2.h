// RL² (Duan et al. 2016; Wang et al. 2016) on the gridworld (`--algo rl2`): a GRU over (s_t, a_{t−1}, r_{t−1})
// whose hidden state feeds the actor and the critic, trained with the PPO loss through the GRU (BPTT over the
// stored chunk). The hidden state is carried across rollout chunks and reset where an episode starts.
// Shares PpoConfig, GAE, the PPO loss and the normalisers with algo/ppo.h.
#pragma once

#include <cstdint>

#include "algo/ppo.h"
#include "kernels/graph.h"
#include "nn/gru.h"

namespace dyn {

struct Rl2Shape {
  int embed = 24;   // Linear + ReLU embedding of [s (6), one-hot a (5), r (1)]
  int hidden = 64;  // GRU hidden
};

// Everything one recurrent policy step writes besides its outputs; the rollout, the bootstrap steps and an
// evaluation each use their own (see HeadWorkspaces).
struct Rl2StepWorkspaces {
  Buffer<float> obs_norm;  // [n, 6]
  MlpWorkspace<float> embed, actor, critic;
  GruWorkspace<float> gru;  // one step
};

class GridRl2 {
 public:
  GridRl2(Backend b, const GridParams& env, int64_t n_envs, const PpoConfig& cfg, Rl2Shape shape = {});
  IterationStats iterate();
  EvalStats evaluate(int64_t n_envs, int episodes_per_env, uint32_t seed);
  int64_t frames() const { return frames_; }
  Backend backend() const { return b_; }
  int64_t graph_replays() const { return graphs_.replays(); }
  int64_t graphs_captured() const { return graphs_.captured(); }
  // For tests: the actions [T, N] of the last collect (backend memory).
  const int32_t* rollout_actions() const { return act_buf_.data(); }

  // Stages (public only because CUDA extended lambdas may not live in private members).
  void collect(IterationStats& st);
  void advantages();
  void update(IterationStats& st);
  void collect_steps();       // the T env steps of a collect (captured)
  void update_minibatches();  // epochs × minibatches over the drawn permutations (captured)
  // One recurrent step for n envs: builds x = [norm(obs), one-hot prev_a, prev_r] into x_out [n, 12], advances
  // h [n, H] (zeroed first where start[i]) into h_out (which may be h), and leaves the actor's logits and the
  // critic's values in ws.
  void step_policy(Rl2StepWorkspaces& ws, const float* obs_raw, const int32_t* prev_a, const float* prev_r,
                   const uint8_t* start, const float* h, int64_t n, float* x_out, float* h_out, bool with_value);

 private:
  Backend b_;
  GridParams env_;
  int64_t n_;
  PpoConfig cfg_;
  Rl2Shape shape_;
  ParamLayout layout_;
  Mlp embed_, actor_, critic_;
  Gru gru_;
  ParamBlob<float> params_;
  Adam<float> adam_;
  RunningNorm obs_norm_, ret_norm_;
  Rl2StepWorkspaces roll_ws_, boot_ws_;                  // rollout steps; bootstrap-value steps
  MlpWorkspace<float> embed_ws_, actor_ws_, critic_ws_;  // update
  GruWorkspace<float> gru_ws_;                           // update (T steps)
  PermutationSampler shuffler_;                          // over the N envs
  uint32_t step_ = 0;                                    // host mirror of step_dev_
  int64_t frames_ = 0;
  StageGraphs graphs_;
  Buffer<uint32_t> step_dev_;  // [1] the global step at the start of the next collect
  Buffer<uint32_t> draws_;     // [1] permutations drawn so far

  // env and recurrent state
  Buffer<GridState> state_;          // [N]
  Buffer<float> obs_, final_obs_;    // [N, 6]
  Buffer<float> h_, h_next_;         // [N, H] carried state; the bootstrap steps' scratch
  Buffer<int32_t> prev_a_;           // [N]
  Buffer<float> prev_r_;             // [N]
  Buffer<uint8_t> start_;            // [N] an episode starts at the next step
  Buffer<float> disc_ret_, ep_ret_;  // [N]
  Buffer<double> episode_sums_;      // [N, 2]
  Buffer<float> x_extra_;            // [N, 12] inputs of the extra steps (bootstrap values)
  Buffer<uint8_t> no_start_;         // [N] zeros
  // rollout, time-major
  Buffer<float> h0_buf_;       // [N, H] hidden state at the chunk's start
  Buffer<float> x_buf_;        // [T, N, 12]
  Buffer<uint8_t> reset_buf_;  // [T, N]
  Buffer<int32_t> act_buf_;    // [T, N]
  Buffer<float> logp_buf_, rew_buf_, disc_buf_, final_val_buf_, adv_buf_, ret_buf_;  // [T, N]
  Buffer<float> val_buf_;                                                            // [T + 1, N]
  Buffer<uint8_t> trunc_buf_, term_buf_, send_buf_;                                  // [T, N]
  Buffer<int32_t> sid_buf_;                                                          // [T, N]
  // minibatch over envs: [T, Nm, ·]
  Buffer<float> mb_x_, mb_h0_, mb_old_logp_, mb_adv_, mb_ret_, mb_old_v_;
  Buffer<uint8_t> mb_reset_;
  Buffer<int32_t> mb_act_, env_perm_;  // env_perm_ [epochs, N]: this update's shuffles of the envs
  Buffer<float> mb_logp_, mb_ent_, mb_glogp_, mb_gent_, mb_dlogits_, mb_dv_, mb_dh_, mb_dembed_, mb_terms_;
  Buffer<float> scalars_;    // [8] device scalars (reductions)
  Buffer<double> term_acc_;  // [5] sums of the minibatch means of the loss terms
};

}  // namespace dyn
