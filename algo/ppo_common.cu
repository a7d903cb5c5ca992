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

// Sample j of a seed batch's minibatches [R, m]: its gradients, and its five terms at terms [R, 5, m].
struct MinibatchTerms {
  int64_t m;
  float inv_m, clip, vf_coef, entropy_coef;
  const float *logp, *old_logp, *entropy, *adv, *v, *old_v, *ret;
  float *g_logp, *g_ent, *dv, *terms;
  DYN_HD void operator()(int64_t j) const {
    const PpoSample<float> s = ppo_sample(logp[j], old_logp[j], adv[j], v[j], old_v[j], ret[j], clip);
    g_logp[j] = s.d_logp * inv_m;
    g_ent[j] = -entropy_coef * inv_m;
    dv[j] = vf_coef * s.d_value * inv_m;
    float* t = terms + (j / m) * 5 * m + j % m;  // the run's [5, m] block
    t[0] = s.policy;
    t[m] = s.value;
    t[2 * m] = entropy[j];
    t[3 * m] = old_logp[j] - logp[j];  // approximate KL(old ‖ new)
    t[4 * m] = s.clipped ? 1.0f : 0.0f;
  }
};

// acc[k] += sums[k] / m.
struct AddMeans {
  double m;
  const float* sums;
  double* acc;
  DYN_HD void operator()(int64_t k) const { acc[k] += double(sums[k]) / m; }
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
                         float vf_coef, float entropy_coef, float* g_logp, float* g_ent, float* dv, float* terms,
                         int runs) {
  parallel_for(b, runs * m,
               MinibatchTerms{m, 1.0f / float(m), clip, vf_coef, entropy_coef, logp, old_logp, entropy, adv, v, old_v,
                              ret, g_logp, g_ent, dv, terms});
}

void accumulate_terms(Backend b, int64_t m, const float* terms, float* scratch, double* acc, int runs) {
  segment_sums(b, terms, size_t(m), 5 * runs, scratch);  // [R, 5] each run's five sums
  parallel_for(b, 5 * runs, AddMeans{double(m), scratch, acc});
}

}  // namespace dyn
