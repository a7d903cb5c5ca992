// PolicyHead: the categorical head through nn/distributions_batch.h, the Gaussian head's rows as functors, and the
// log-std's gradient as a column sum (one GEMM) over the batch.
#include "algo/policy_head.h"
#include "kernels/parallel_for.cuh"
#include "nn/distributions.h"
#include "nn/distributions_batch.h"
#include "nn/mlp.h"

namespace dyn {

namespace {

// Row i of rows_per_run-row runs, each run's log-std stride apart.
struct GaussianLogProbEntropy {
  int A;
  const float *mu, *log_std, *x;
  float *logp, *entropy;
  int64_t rows_per_run, stride;
  DYN_HD void operator()(int64_t i) const {
    const float* ls = log_std + (i / rows_per_run) * stride;
    if (logp) logp[i] = gaussian_log_prob(mu + i * A, ls, x + i * A, A);
    if (entropy) entropy[i] = gaussian_entropy(ls, A);
  }
};

// Row i: d loss / d μ, and d loss / d log σ of this row (the log-prob's part plus the entropy's, dH/d log σ = 1);
// rows_per_run-row runs, each run's log-std stride apart.
struct GaussianRowGrad {
  int A;
  const float *mu, *log_std, *x, *g_logp, *g_ent;
  float *dmu, *dlog_std;  // [n, A] each
  int64_t rows_per_run, stride;
  DYN_HD void operator()(int64_t i) const {
    const float* ls = log_std + (i / rows_per_run) * stride;
    float* dm = dmu + i * A;
    float* dl = dlog_std + i * A;
    const float ge = g_ent ? g_ent[i] : 0.0f;
    for (int k = 0; k < A; ++k) {
      dm[k] = 0.0f;
      dl[k] = ge;
    }
    if (g_logp) gaussian_log_prob_grad(mu + i * A, ls, x + i * A, A, g_logp[i], dm, dl, static_cast<float*>(nullptr));
  }
};

}  // namespace

PolicyHead::PolicyHead(const EnvSpec& spec, ParamLayout& layout, const std::string& prefix)
    : discrete_(spec.discrete()), a_(spec.action_dim) {
  if (!discrete_) log_std_ = layout.add(prefix + ".log_std", {a_}, Init::zeros);
}

void PolicyHead::act(Backend b, const float* params, const float* out, bool deterministic, const BatchRows& rows,
                     StepRef step, const ActionBuffers& actions, int64_t n, size_t param_stride) const {
  if (discrete_)
    categorical_act(b, out, deterministic, rows, step, actions.index, n, a_);
  else
    gaussian_act(b, out, params + log_std_, int64_t(param_stride), deterministic, rows, step, actions.value, n, a_);
}

void PolicyHead::log_prob_entropy(Backend b, const float* params, const float* out, const ActionBatch& a, float* logp,
                                  float* entropy, int64_t n, int runs, size_t param_stride) const {
  if (discrete_)
    categorical_log_prob_entropy(b, out, a.index, logp, entropy, n, a_);
  else
    parallel_for(b, n,
                 GaussianLogProbEntropy{a_, out, params + log_std_, a.value, logp, entropy, n / runs,
                                        runs > 1 ? int64_t(param_stride) : 0});
}

void PolicyHead::backward(Backend b, const float* params, float* grads, const float* out, const ActionBatch& a,
                          const float* g_logp, const float* g_ent, float* d_out, float* scratch, int64_t n,
                          bool accumulate, int runs, size_t param_stride) const {
  if (discrete_) {
    categorical_backward(b, out, a.index, g_logp, g_ent, d_out, n, a_);
    return;
  }
  const int64_t stride = runs > 1 ? int64_t(param_stride) : 0, per_run = n / runs;
  parallel_for(b, n,
               GaussianRowGrad{a_, out, params + log_std_, a.value, g_logp, g_ent, d_out, scratch, per_run, stride});
  // d loss / d log σ, each run's rows summed into its own gradient
  column_sums_seeds(b, scratch, int(per_run), a_, grads + log_std_, stride, runs, accumulate);
}

}  // namespace dyn
