// The policy's action distribution, chosen from the env spec (SPEC §4): a categorical over A logits for discrete
// actions, or a diagonal Gaussian N(μ, exp(log σ)²) with a state-independent learned log-std for continuous ones.
// The actor MLP outputs the logits or μ [n, A]; the log-std is one more view of the parameter blob. Sampled actions
// are stored unclipped (the env clips them), so log-probabilities are those of the sample itself.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/batch_rows.h"
#include "kernels/buffer.h"
#include "kernels/step_ref.h"
#include "nn/params.h"
#include "sim/env.h"

namespace dyn {

class PolicyHead {
 public:
  PolicyHead() = default;
  // Registers "<prefix>.log_std" [A] (initialised to 0: σ = 1) for continuous actions.
  PolicyHead(const EnvSpec& spec, ParamLayout& layout, const std::string& prefix);
  bool discrete() const { return discrete_; }
  int action_dim() const { return a_; }
  int out_width() const { return a_; }  // the actor's output: logits or μ
  size_t log_std_offset() const { return log_std_; }

  // Actions from the actor's output out [n, A]: row i's sampled with Philox(key.seed, kStreamPolicy, key.env, step)
  // for its key rows.key(i), or the mode. A seed batch's rows (rows.seeds) are its runs', each run's parameters at
  // params + run · param_stride.
  void act(Backend b, const float* params, const float* out, bool deterministic, const BatchRows& rows, StepRef step,
           const ActionBuffers& actions, int64_t n, size_t param_stride = 0) const;
  // log π(a | s) [n] and the entropy [n] of the distributions at out; either may be nullptr. The rows may be `runs`
  // runs' of n / runs each, run r's parameters at params + r · param_stride.
  void log_prob_entropy(Backend b, const float* params, const float* out, const ActionBatch& a, float* logp,
                        float* entropy, int64_t n, int runs = 1, size_t param_stride = 0) const;
  // From the per-sample gradients of the loss w.r.t. log π (g_logp [n]) and the entropy (g_ent [n]): d loss / d out
  // into d_out [n, A] and, for the Gaussian, the log-std's gradient written (or, accumulate, added) into grads
  // (scratch: [n, A]). The rows may be `runs` runs' of n / runs each, run r's parameters and gradients at
  // + r · param_stride (one launch for the rows, one strided-batched column sum for the runs' log-stds).
  void backward(Backend b, const float* params, float* grads, const float* out, const ActionBatch& a,
                const float* g_logp, const float* g_ent, float* d_out, float* scratch, int64_t n, bool accumulate,
                int runs = 1, size_t param_stride = 0) const;

 private:
  bool discrete_ = true;
  int a_ = 0;
  size_t log_std_ = 0;
};

}  // namespace dyn
