// The distributions of nn/distributions.h over N rows on either backend (kernels/distributions.cu): what the
// policies and belief models call. Gradients are written (overwrite), one row per parallel_for item.
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "kernels/batch_rows.h"
#include "kernels/step_ref.h"

namespace dyn {

// logits [N, A], actions [N] -> log p(action) [N] and entropy [N] (either may be nullptr)
template <class T>
void categorical_log_prob_entropy(Backend b, const T* logits, const int32_t* actions, T* logp, T* entropy, int64_t n,
                                  int a);

// dlogits [N, A] = g_logp[i] · d log p / d logits + g_entropy[i] · d H / d logits (either g may be nullptr)
template <class T>
void categorical_backward(Backend b, const T* logits, const int32_t* actions, const T* g_logp, const T* g_entropy,
                          T* dlogits, int64_t n, int a);

// actions [N]: the mode, or row i's sample drawn from Philox(key.seed, kStreamPolicy, key.env, step) with its key
// rows.key(i) (kernels/batch_rows.h: one run's rows, a data-parallel share, or a seed batch's runs)
template <class T>
void categorical_act(Backend b, const T* logits, bool deterministic, const BatchRows& rows, StepRef step,
                     int32_t* actions, int64_t n, int a);
// One run's rows from global row first_row on (a data-parallel rank's first env).
template <class T>
void categorical_act(Backend b, const T* logits, bool deterministic, uint32_t seed, StepRef step, int32_t* actions,
                     int64_t n, int a, uint32_t first_row = 0) {
  categorical_act(b, logits, deterministic, BatchRows{seed, first_row}, step, actions, n, a);
}

// mu [N, D], a state-independent log_std [D], x [N, D] -> log p(x) [N]
template <class T>
void gaussian_log_prob_batch(Backend b, const T* mu, const T* log_std, const T* x, T* logp, int64_t n, int d);

// dmu [N, D] and per-row dlog_std [N, D] (sum over rows for the shared log_std) of Σ g[i] · log p(x_i)
template <class T>
void gaussian_log_prob_backward(Backend b, const T* mu, const T* log_std, const T* x, const T* g, T* dmu,
                                T* dlog_std_rows, int64_t n, int d);

// x [N, D]: the mean, or mu + σ ⊙ eps with row i's eps from Philox(key.seed, kStreamPolicy, key.env, step) with its
// key rows.key(i); row i's log_std [D] at log_std + rows.run(i) · log_std_stride (a seed batch's runs' own)
template <class T>
void gaussian_act(Backend b, const T* mu, const T* log_std, int64_t log_std_stride, bool deterministic,
                  const BatchRows& rows, StepRef step, T* x, int64_t n, int d);
// One run's rows from global row first_row on.
template <class T>
void gaussian_act(Backend b, const T* mu, const T* log_std, bool deterministic, uint32_t seed, StepRef step, T* x,
                  int64_t n, int d, uint32_t first_row = 0) {
  gaussian_act(b, mu, log_std, 0, deterministic, BatchRows{seed, first_row}, step, x, n, d);
}

// kl [N] = KL(N(mu1, e^lv1) ‖ N(mu2, e^lv2)) per row; mu2 = lv2 = nullptr means N(0, I)
template <class T>
void gaussian_kl_batch(Backend b, const T* mu1, const T* lv1, const T* mu2, const T* lv2, T* kl, int64_t n, int d);

// Gradients of Σ g[i] · kl[i] to both sides [N, D]; dmu2/dlv2 may be nullptr (a detached or N(0, I) side)
template <class T>
void gaussian_kl_batch_backward(Backend b, const T* mu1, const T* lv1, const T* mu2, const T* lv2, const T* g, T* dmu1,
                                T* dlv1, T* dmu2, T* dlv2, int64_t n, int d);

}  // namespace dyn
