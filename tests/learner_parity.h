// CPU vs CUDA over several training iterations of a gridworld learner from the same seed (label gpu), and CUDA
// Graph replay against the eager path. The env steps and every Philox draw are bit-identical on both backends; the
// networks differ by float rounding (cuBLAS / fused kernels vs OpenBLAS, FMA, summation order), so a sampled action
// flips only where its uniform lands within rounding of a CDF boundary. The tests count those flips from the
// rollouts' actions and bound each figure by what the flips and the rounding allow; every bound is reported beside
// its measured value (tests/bounds.h).
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "algo/ppo_config.h"
#include "kernels/check.h"
#include "tests/bounds.h"

namespace dyn_test {

inline std::vector<int32_t> actions_on_host(dyn::Backend b, const int32_t* p, size_t n) {
  std::vector<int32_t> out(n);
  if (b == dyn::Backend::cuda)
    DYN_CUDA_CHECK(cudaMemcpy(out.data(), p, n * sizeof(int32_t), cudaMemcpyDeviceToHost));
  else
    out.assign(p, p + n);
  return out;
}

// |g − c| bound for a figure that float rounding alone moves by a relative `rel` (with an absolute floor `abs`).
inline double rounding_bound(double c, double rel, double abs) { return rel * std::fabs(c) + abs; }

// Runs `iterations` iterations on both learners (built with the same env seed and config: rollout of T steps over
// N envs, horizon H, per-step rewards within a span of `reward_span`) and checks, per iteration:
//  - flipped actions: at most 1e-3 of the samples (a flip needs a uniform within ~1e-6 of a CDF boundary);
//  - the mean train return: equal to 1e-9 (identical env steps, sums in double) plus, per flipped action, one
//    episode's worth of reward span over the episodes that finished (a flip changes only its own episode);
//  - the losses and entropy: within 1e-3 relative + a small floor (float GEMMs and float CUB sums over minibatches
//    of thousands of samples, compounded over a few Adam steps; expected ~1e-5).
template <class Learner>
void expect_iterations_match_cpu(Learner& cpu, Learner& gpu, int iterations, int T, int64_t N, int H,
                                 double reward_span, const std::vector<std::string>& extra_metrics = {}) {
  const size_t samples = size_t(T) * size_t(N);
  for (int it = 0; it < iterations; ++it) {
    const dyn::IterationStats c = cpu.iterate(), g = gpu.iterate();
    const std::string at = "it" + std::to_string(it) + "/";
    EXPECT_EQ(g.frames, c.frames);
    EXPECT_EQ(g.episodes, c.episodes) << at << "episodes end at the time limit on both";
    const std::vector<int32_t> ac = actions_on_host(cpu.backend(), cpu.rollout_actions(), samples),
                               ag = actions_on_host(gpu.backend(), gpu.rollout_actions(), samples);
    int64_t flips = 0;
    for (size_t i = 0; i < samples; ++i) flips += ac[i] != ag[i];
    DYN_EXPECT_WITHIN(at + "flipped_action_fraction", double(flips) / double(samples), 1e-3);
    if (c.episodes > 0) {
      const double per_flip = reward_span * H / double(c.episodes);
      DYN_EXPECT_WITHIN(at + "train_return_abs_diff", std::fabs(g.train_return - c.train_return),
                        1e-9 * (1 + std::fabs(c.train_return)) + double(flips) * per_flip);
    }
    DYN_EXPECT_WITHIN(at + "policy_loss_abs_diff", std::fabs(g.policy_loss - c.policy_loss),
                      rounding_bound(c.policy_loss, 1e-3, 1e-4));
    DYN_EXPECT_WITHIN(at + "value_loss_abs_diff", std::fabs(g.value_loss - c.value_loss),
                      rounding_bound(c.value_loss, 1e-3, 1e-5));
    DYN_EXPECT_WITHIN(at + "entropy_abs_diff", std::fabs(g.entropy - c.entropy), rounding_bound(c.entropy, 1e-3, 1e-6));
    DYN_EXPECT_WITHIN(at + "grad_norm_abs_diff", std::fabs(g.grad_norm - c.grad_norm),
                      rounding_bound(c.grad_norm, 1e-2, 1e-6));  // one minibatch's norm: fewer samples averaged
    for (const std::string& k : extra_metrics) {
      const double mc = c.metric(k), mg = g.metric(k);
      if (std::isnan(mc) && std::isnan(mg)) continue;  // not reported this iteration on either
      DYN_EXPECT_WITHIN(at + k + "_abs_diff", std::fabs(mg - mc), rounding_bound(mc, 1e-3, 1e-5));
    }
  }
}

// Graph replay vs eager on CUDA, for learners built with the same config but cuda_graphs on and off: the same
// kernels run, reading the step counter, Adam's bias corrections and the shuffles' draw number from device memory,
// so the figures agree to rounding (atomics in a few reductions may reorder), and graphs were captured and replayed.
template <class Learner>
void expect_graphs_match_eager(Learner& graphed, Learner& eager, int iterations, int64_t expected_captures,
                               const std::vector<std::string>& extra_metrics = {}) {
  for (int it = 0; it < iterations; ++it) {
    const dyn::IterationStats g = graphed.iterate(), e = eager.iterate();
    const std::string at = "it" + std::to_string(it) + "/";
    EXPECT_EQ(g.frames, e.frames);
    EXPECT_EQ(g.episodes, e.episodes) << at;
    DYN_EXPECT_WITHIN(at + "train_return_abs_diff", std::fabs(g.train_return - e.train_return),
                      1e-9 + 1e-6 * std::fabs(e.train_return));
    DYN_EXPECT_WITHIN(at + "policy_loss_abs_diff", std::fabs(g.policy_loss - e.policy_loss), 1e-6);
    DYN_EXPECT_WITHIN(at + "value_loss_abs_diff", std::fabs(g.value_loss - e.value_loss),
                      1e-6 * std::fabs(e.value_loss) + 1e-7);
    DYN_EXPECT_WITHIN(at + "grad_norm_abs_diff", std::fabs(g.grad_norm - e.grad_norm), 1e-5 * e.grad_norm);
    for (const std::string& k : extra_metrics) {
      const double mg = g.metric(k), me = e.metric(k);
      if (std::isnan(mg) && std::isnan(me)) continue;
      DYN_EXPECT_WITHIN(at + k + "_abs_diff", std::fabs(mg - me), 1e-5 * std::fabs(me) + 1e-9);
    }
  }
  EXPECT_EQ(graphed.graphs_captured(), expected_captures);
  // per stage and phase: the first call eager, the second captured and launched, the rest replayed
  EXPECT_GT(graphed.graph_replays(), 0);
  EXPECT_EQ(eager.graph_replays(), 0);
  EXPECT_EQ(eager.graphs_captured(), 0);
}

}  // namespace dyn_test
