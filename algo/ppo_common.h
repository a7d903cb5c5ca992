// The pieces PPO and RL² share, batched on the backend: per-step return tracking, GAE over a rollout, whole-batch
// advantage normalisation, the per-sample PPO loss terms and gradients of a minibatch, and reading back the
// iteration's episode statistics.
#pragma once

#include <cstdint>

#include "kernels/buffer.h"

namespace dyn {

// After an env step: disc = γ·disc + r (for the reward scale) copied to disc_t; raw episode returns in ep; at an
// episode end sums[2i] += return, sums[2i+1] += 1 and both restart. All arrays [N] (sums [N, 2]).
void track_returns(Backend b, int64_t n, float gamma, const float* r, const uint8_t* trunc, const uint8_t* term,
                   float* disc, float* disc_t, float* ep, double* sums);

// GAE over a [T, N] rollout (values [T + 1, N]), then advantages normalised over all T·N entries on the backend
// (scalars: 2 backend floats of scratch).
void advantages_normalized(Backend b, int steps, int64_t n, const float* r, const float* v, const uint8_t* term,
                           const uint8_t* trunc, const float* final_v, float gamma, float lambda, float* adv,
                           float* ret, float* scalars);

// Per-sample PPO terms of a minibatch of m samples: gradients (means over m) w.r.t. log π (g_logp), the
// entropy (g_ent) and the value (dv), and terms [5, m] = policy, value, entropy, approx KL, clipped.
void ppo_minibatch_terms(Backend b, int64_t m, const float* logp, const float* old_logp, const float* entropy,
                         const float* adv, const float* v, const float* old_v, const float* ret, float clip,
                         float vf_coef, float entropy_coef, float* g_logp, float* g_ent, float* dv, float* terms);

// Adds the means of the five terms [5, m] into acc[5], all on the backend (scratch: 5 backend floats); the host
// reads acc once per iteration.
void accumulate_terms(Backend b, int64_t m, const float* terms, float* scratch, double* acc);

struct EvalStats {
  int64_t episodes = 0;
  double mean_return = 0, ci95 = 0;
};

// After an evaluation step: ep += r; where done, sums [N, 3] gets the return, its square and a count, and ep
// restarts.
void track_eval_returns(Backend b, int64_t n, const float* r, const uint8_t* done, float* ep, double* sums);

// Mean ± 95% CI (normal approximation) of the episodes in sums [N, 3] (one read).
EvalStats eval_stats(const Buffer<double>& sums, int64_t n);

// Mean return and count of the episodes in sums [N, 2] (read back once per iteration).
double mean_episode_return(const Buffer<double>& sums, int64_t n, int64_t* episodes);

}  // namespace dyn
