// PPO's batched pieces on the backend: the reward scale's discounted return, GAE over a rollout with whole-batch
// advantage normalisation, and the per-sample loss terms and gradients of a minibatch with their running means.
#pragma once

#include <cstdint>

#include "kernels/buffer.h"

namespace dyn {

// After an env step: disc = γ·disc + r (the reward scale's discounted return), copied to disc_t, restarting from 0
// after an episode end. All arrays [N].
void track_discounted_return(Backend b, int64_t n, float gamma, const float* r, const uint8_t* trunc,
                             const uint8_t* term, float* disc, float* disc_t);

// GAE over a [T, N] rollout (values [T + 1, N]), then advantages normalised over all T·N entries on the backend
// (data parallel: over every rank's; scalars: 2 · runs backend floats of scratch). A seed batch's `runs` rollouts side
// by side (run s's [T, N] blocks at s·T·N, its values at s·(T + 1)·N): one launch over the runs' S·N envs, each run's
// advantages normalised by its own moments, exactly as that run alone.
void advantages_normalized(Backend b, int steps, int64_t n, const float* r, const float* v, const uint8_t* term,
                           const uint8_t* trunc, const float* final_v, float gamma, float lambda, float* adv,
                           float* ret, float* scalars, int runs = 1);

// Per-sample PPO terms of a minibatch of m samples: gradients (means over m) w.r.t. log π (g_logp), the
// entropy (g_ent) and the value (dv), and terms [5, m] = policy, value, entropy, approx KL, clipped. A seed batch's
// `runs` minibatches side by side ([R, m] each, terms [R, 5, m]) in one launch, each as that run's alone.
void ppo_minibatch_terms(Backend b, int64_t m, const float* logp, const float* old_logp, const float* entropy,
                         const float* adv, const float* v, const float* old_v, const float* ret, float clip,
                         float vf_coef, float entropy_coef, float* g_logp, float* g_ent, float* dv, float* terms,
                         int runs = 1);

// Adds the means of the five terms [5, m] into acc[5], all on the backend (scratch: 5 backend floats); the host
// reads acc once per iteration. A seed batch's runs: terms [R, 5, m] into acc [R, 5] (scratch: 5R floats), one
// segmented reduction for all.
void accumulate_terms(Backend b, int64_t m, const float* terms, float* scratch, double* acc, int runs = 1);

}  // namespace dyn
