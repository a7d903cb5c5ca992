// The PPO update's minibatches: the plan that cuts each epoch's shuffle into minibatches, and the gathers that copy a
// minibatch's rows (feed-forward: samples; recurrent: whole env sequences with their starting states) out of the
// time-major rollout.
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "kernels/hd.h"
#include "kernels/shuffle.h"
#include "kernels/step_ref.h"

namespace dyn {

// Each epoch shuffles the items — the T·N samples, or the N env sequences of a recurrent policy — and cuts the
// shuffle into `minibatches` consecutive runs whose sizes differ by at most one, so every item is used exactly once
// per epoch whatever T·N is. The items come in `groups` of `unit` that a minibatch takes whole: one item each for a
// global shuffle; for the per-env plan of a feed-forward rollout, the N samples of one shuffled step index (one of
// every env), so minibatch k holds steps [T·k/M, T·(k+1)/M) of every env's shuffle.
struct MinibatchPlan {
  int64_t items = 0;
  int minibatches = 1;
  int64_t groups = 0, unit = 1;  // items = groups · unit
  // Throws std::invalid_argument (naming train.minibatches) unless 1 <= minibatches <= items.
  MinibatchPlan(int64_t items, int minibatches);
  // The per-env plan of a feed-forward rollout of T steps × N envs; throws unless 1 <= minibatches <= T.
  static MinibatchPlan per_env_steps(int steps, int64_t envs, int minibatches);
  int64_t begin(int k) const {
    return unit * (groups * k / minibatches);
  }  // minibatch k: shuffle[begin(k), begin(k+1))
  int64_t count(int k) const { return begin(k + 1) - begin(k); }
  int64_t largest() const { return unit * ((groups + minibatches - 1) / minibatches); }
  bool even() const { return groups % minibatches == 0; }
};

// The per-env shuffles (train.shuffle = per_env), drawn on the backend with no sort: each item's place is its rank
// among its group's Philox keys (ties broken by index), so a rank holding envs [first_env, first_env + N) draws
// exactly its envs' part of what one process with every env draws.
// Feed-forward: perm [T·N] ← env e's steps t in the order of keys Philox(seed, kStreamShuffle, first_env + e, draw, t);
// minibatch k (MinibatchPlan::per_env_steps) is its slice of every env's order, env by env.
// With `runs` (runs.seeds set), every run's per_run orders in one launch: perm [R, per_run, T·N], seed and draw
// number from `runs` (seed and draw unused).
void draw_per_env_steps(Backend b, uint32_t seed, StepRef draw, int steps, int64_t envs, int minibatches,
                        uint32_t first_env, int32_t* perm, const RunDraws& runs = {});
// Recurrent: perm [N] ← in every block of M = minibatches consecutive envs (first_env a multiple of M), the envs in
// the order of keys Philox(seed, kStreamShuffle, first_env + e, draw); minibatch k takes the k-th env of every block.
// With `runs`: perm [R, per_run, N], as draw_per_env_steps.
void draw_per_env_blocks(Backend b, uint32_t seed, StepRef draw, int64_t envs, int minibatches, uint32_t first_env,
                         int32_t* perm, const RunDraws& runs = {});

// Row j of the rollout into row i of the minibatch: the input, the action, and the update's per-sample data
// (act_index or act_value may be null: the other action kind; reset is null for a feed-forward policy).
struct SampleRows {
  int in_dim, action_dim;
  const float *in, *logp, *adv, *ret, *val, *act_value;  // [T·N, in], [T·N] ×4, [T·N, A]
  const int32_t* act_index;                              // [T·N]
  const uint8_t* reset;                                  // [T·N]
  float *m_in, *m_logp, *m_adv, *m_ret, *m_v, *m_act_value;
  int32_t* m_act_index;
  uint8_t* m_reset;
  // (v: row j's value row, which differs from j in a seed batch's run blocks: values hold T + 1 steps)
  DYN_HD void copy(int64_t i, int64_t j, int64_t v) const {
    for (int k = 0; k < in_dim; ++k) m_in[i * in_dim + k] = in[j * in_dim + k];
    if (act_index) m_act_index[i] = act_index[j];
    if (act_value)
      for (int k = 0; k < action_dim; ++k) m_act_value[i * action_dim + k] = act_value[j * action_dim + k];
    if (reset) m_reset[i] = reset[j];
    m_logp[i] = logp[j];
    m_adv[i] = adv[j];
    m_ret[i] = ret[j];
    m_v[i] = val[v];
  }
};

// The runs of a seed batch side by side: run r's shuffled indices `index_stride` after the last run's, its rollout
// rows `rollout` after (its values `values` after: T + 1 steps), and its minibatch rows m (samples) or T·Nm
// (sequences) after. One run: all strides unused.
struct RunBlocks {
  int runs = 1;
  int64_t index_stride = 0, rollout = 0, values = 0;
};

// Feed-forward minibatch of m samples: row i ← rollout row samples[i]; of every run in one launch (run r's rows
// [r·m, (r+1)·m) from its own block and indices).
void gather_samples(Backend b, const SampleRows& rows, const int32_t* samples, int64_t m, const RunBlocks& runs = {});

// Recurrent minibatch [T, Nm] of the whole sequences of envs[0..Nm) out of a rollout of N envs: row (t, j) ← rollout
// row (t, envs[j]), and the starting states m_h0 [Nm, H] ← h0 [envs[j], H]; of every run in one launch each (run r's
// minibatch [T, Nm] and states [Nm, H] after the last run's, its h0 [N, H] too).
void gather_sequences(Backend b, const SampleRows& rows, const int32_t* envs, int T, int64_t N, int64_t Nm, int H,
                      const float* h0, float* m_h0, const RunBlocks& runs = {});

}  // namespace dyn
