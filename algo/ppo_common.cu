// PPO's batched pieces over parallel_for and the backend reductions.
#include <cmath>

#include "algo/gae.h"
#include "algo/ppo_common.h"
#include "algo/ppo_loss.h"
#include "kernels/collective.h"
#include "kernels/parallel_for.cuh"
#include "kernels/reduce.h"

namespace dyn {

namespace {

struct DiscountStep {
  float gamma;
  const float* r;
  const uint8_t *trunc, *term;
  float *disc, *disc_t;
  DYN_HD void operator()(int64_t i) const {
    disc[i] = disc[i] * gamma + r[i];
    disc_t[i] = disc[i];
    if (trunc[i] || term[i]) disc[i] = 0.0f;
  }
};

// GAE of row j of a seed batch's runs: env j % n of run j / n, its [T, N] blocks T·N apart (values (T + 1)·N).
struct GaeRows {
  int steps;
  int64_t n;
  const float *r, *v;
  const uint8_t *term, *trunc;
  const float* final_v;
  float gamma, lambda;
  float *adv, *ret;
  DYN_HD void operator()(int64_t j) const {
    const int64_t run = j / n, o = run * steps * n;
    gae_row(steps, int(n), int(j % n), r + o, v + o + run * n, term + o, trunc + o, final_v + o, gamma, lambda, adv + o,
            ret + o);
  }
};

// Entry i of a seed batch's advantages [S, T·N], normalised by its run's moments: sums [S], sums of squares [S] over
// `count` entries each.
struct NormalizeByRun {
  int64_t per_run;
  int runs;
  const float* moments;  // [2, S]
  float count;
  float* adv;
  DYN_HD void operator()(int64_t i) const {
    const int64_t run = i / per_run;
    const float mean = moments[run] / count;
    const float var = moments[runs + run] / count - mean * mean;
    adv[i] = (adv[i] - mean) / (sqrtf(var > 0.0f ? var : 0.0f) + 1e-8f);
  }
};

}  // namespace

void track_discounted_return(Backend b, int64_t n, float gamma, const float* r, const uint8_t* trunc,
                             const uint8_t* term, float* disc, float* disc_t) {
  parallel_for(b, n, DiscountStep{gamma, r, trunc, term, disc, disc_t});
}

void advantages_normalized(Backend b, int steps, int64_t n, const float* r, const float* v, const uint8_t* term,
                           const uint8_t* trunc, const float* final_v, float gamma, float lambda, float* adv,
                           float* ret, float* scalars, int runs) {
  parallel_for(b, runs * n, GaeRows{steps, n, r, v, term, trunc, final_v, gamma, lambda, adv, ret});
  const size_t per_run = size_t(steps) * n;
  segment_sums(b, adv, per_run, runs, scalars);                    // [S] each run's Σ adv
  segment_sums_of_squares(b, adv, per_run, runs, scalars + runs);  // [S] each run's Σ adv²
  sum_over_ranks(b, scalars, 2 * runs);  // data parallel: the moments of every rank's advantages
  const float count = float(per_run * size_t(data_parallel_ranks()));
  parallel_for(b, int64_t(per_run) * runs, NormalizeByRun{int64_t(per_run), runs, scalars, count, adv});
}

void ppo_minibatch_terms(Backend b, int64_t m, const float* logp, const float* old_logp, const float* entropy,
                         const float* adv, const float* v, const float* old_v, const float* ret, float clip,
                         float vf_coef, float entropy_coef, float* g_logp, float* g_ent, float* dv, float* terms) {
  const float inv_m = 1.0f / float(m);
  parallel_for(b, m, [=] DYN_LAMBDA(int64_t i) {
    const PpoSample<float> s = ppo_sample(logp[i], old_logp[i], adv[i], v[i], old_v[i], ret[i], clip);
    g_logp[i] = s.d_logp * inv_m;
    g_ent[i] = -entropy_coef * inv_m;
    dv[i] = vf_coef * s.d_value * inv_m;
    terms[i] = s.policy;
    terms[m + i] = s.value;
    terms[2 * m + i] = entropy[i];
    terms[3 * m + i] = old_logp[i] - logp[i];  // approximate KL(old ‖ new)
    terms[4 * m + i] = s.clipped ? 1.0f : 0.0f;
  });
}

void accumulate_terms(Backend b, int64_t m, const float* terms, float* scratch, double* acc) {
  for (int k = 0; k < 5; ++k) reduce_sum(b, terms + k * m, size_t(m), scratch + k);
  parallel_for(b, 5, [=] DYN_LAMBDA(int64_t k) { acc[k] += double(scratch[k]) / double(m); });
}

}  // namespace dyn
