// PPO with a feed-forward policy on any env (SPEC §4): `--algo ppo` sees the state only (the non-meta baseline);
// `--algo oracle` sees the state and the ground-truth latent of the current session (the learned ceiling, as
// VariBAD's papers report it). The running normalisation of the policy's input, the collect and the evaluation
// agent around a PpoCore (algo/rollout_learner.h). With seeds, a seed batch: S runs trained side by side, each with
// its own envs, input normaliser and PpoCore part, each run's figures those of the run alone (bit for bit on the CPU).
#pragma once

#include <cstdint>
#include <vector>

#include "algo/rollout_learner.h"
#include "algo/running_norm.h"

namespace dyn {

class PpoLearner : public RolloutLearner {
 public:
  // with_latent: the policy's input is [s, latent] (the oracle PPO), else [s].
  // seeds: a seed batch's runs (empty: one run, env.seed; else seeds[0] must be env.seed).
  PpoLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg, bool with_latent = false,
             const std::vector<uint32_t>& seeds = {});
  ~PpoLearner() override;
  std::unique_ptr<EvalAgent> eval_agent(int64_t n) override { return run_eval_agent(n, 0); }
  std::unique_ptr<EvalAgent> run_eval_agent(int64_t n, int run) override;
  void visit_run_state(StateVisitor& v, int run) override;

 private:
  class Agent;
  void collect_steps() override;
  int raw_dim() const { return spec().obs_dim + (with_latent_ ? spec().latent_dim : 0); }
  // raw [n, obs (+ latent)] ← the observations (and latents)
  void raw_input(const float* obs, const float* latent, int64_t n, float* raw) const;

  bool with_latent_;
  RunNorms in_norms_;  // [S]
  PolicyWorkspace roll_ws_;
  Buffer<float> latent_;  // [S·N, latent] the current sessions' latents
  Buffer<float> raw_;     // [S·N, raw] the policy's input before normalisation
};

}  // namespace dyn
