// What the PPO learners share (SPEC §4): the hyperparameters, an iteration's statistics, the horizon clock (which
// steps truncate, and the graph key of a collect), the policy's workspaces, and the host-side helpers of an update.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "algo/ppo_common.h"
#include "algo/running_norm.h"
#include "kernels/buffer.h"
#include "kernels/graph.h"
#include "kernels/shuffle.h"
#include "kernels/step_ref.h"
#include "nn/adam.h"
#include "nn/gru.h"
#include "nn/mlp.h"

namespace dyn {

// How an epoch is cut into minibatches (algo/minibatch.h): one shuffle of every item, or per env (feed-forward: each
// env's T steps shuffled, every minibatch a slice of every env's; recurrent: one env of every block of `minibatches`
// envs), so a data-parallel rank's share of every minibatch is the same size on every rank.
enum class ShufflePlan : uint8_t { global, per_env };

struct PpoConfig {
  int rollout_steps = 60;  // T per iteration
  int epochs = 2, minibatches = 4;
  ShufflePlan shuffle = ShufflePlan::global;
  float gamma = 0.99f, gae_lambda = 0.95f;
  float clip = 0.2f, vf_coef = 0.5f, entropy_coef = 0.01f;
  int hidden = 128;
  AdamConfig adam;          // lr 3e-4, eps 1e-8, max_grad_norm 0.5
  bool cuda_graphs = true;  // CUDA backend: replay collect, advantages and update as captured graphs
};

// Stage keys of StageGraphs: a collect is keyed by its phase within the horizon (which steps bootstrap a time
// limit), the other stages have one graph each.
constexpr int64_t kGraphAdvantages = -1, kGraphUpdate = -2;

// The global step of a rollout in lockstep envs that share the horizon H: every env truncates after the same
// global steps, so which steps of a collect bootstrap a time limit depends only on the collect's phase in H, the
// key of its CUDA Graph.
struct HorizonClock {
  int horizon = 1;
  uint32_t step = 0;  // the global step at the start of the next collect
  int64_t phase() const { return int64_t(step % uint32_t(horizon)); }
  int index_in_episode(int t) const { return int((step + uint32_t(t)) % uint32_t(horizon)); }
  bool truncates_after(int t) const { return index_in_episode(t) == horizon - 1; }  // step t ends an episode
};

// The policy's activations for one kind of pass (rollout, bootstrap, update, evaluation): each captured stage keeps
// its own, so no stage reallocates buffers another stage's graph points at.
struct PolicyWorkspace {
  MlpWorkspace<float> embed, actor, critic;
  GruWorkspace<float> gru;
  Buffer<float> features;  // [n, H] the recurrent features of one step
};

struct IterationStats {
  int64_t frames = 0;       // env steps so far, all envs
  int64_t episodes = 0;     // episodes finished in this iteration's rollout
  double train_return = 0;  // their mean return (raw rewards); NaN when none finished
  double policy_loss = 0, value_loss = 0, entropy = 0, approx_kl = 0, clip_fraction = 0;
  double grad_norm = 0;                                  // before clipping, last minibatch
  double collect_s = 0, advantages_s = 0, update_s = 0;  // wall time of each stage (host clock)
  std::vector<std::pair<std::string, double>> extra;     // learner-specific metrics, the same keys every iteration
  std::vector<std::string> unmeasured;  // the extra metrics with nothing to measure this iteration (NaN by design)
  // Adds extra metric `name`: `value` where `measured`, else NaN, listed as unmeasured (a non-finite measured metric
  // stops a training run; an unmeasured one does not).
  void add(const std::string& name, double value, bool measured = true) {
    extra.emplace_back(name, measured ? value : std::nan(""));
    if (!measured) unmeasured.push_back(name);
  }
  // The extra metric `name`; NaN when this learner does not report it.
  double metric(const std::string& name) const {
    for (const auto& [k, v] : extra)
      if (k == name) return v;
    return std::nan("");
  }
};

// Throws std::invalid_argument when a rollout of T steps × N envs has more samples than the int32 sample indices
// (and int GEMM row counts) hold: T · N must be below 2³¹.
void check_rollout_size(int steps, int64_t envs);

// An update's loss statistics of each of S runs (a seed batch; one run alone): the means over `updates` minibatches
// of the sums in term_acc [S, 5], and grad_norms [S], into st[0..S) (one read; data parallel: over every rank's
// minibatch shares, term_acc summed over the ranks first).
void read_update_stats(Buffer<double>& term_acc, int updates, const std::vector<double>& grad_norms,
                       IterationStats* st);

}  // namespace dyn
