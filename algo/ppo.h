// PPO with a feed-forward policy on any env (SPEC §4): `--algo ppo` sees the state only (the non-meta baseline);
// `--algo oracle` sees the state and the ground-truth latent of the current session (the learned ceiling, as
// VariBAD's papers report it). The running normalisation of the policy's input, the collect and the evaluation
// agent around a PpoCore (algo/rollout_learner.h).
#pragma once

#include <cstdint>

#include "algo/rollout_learner.h"
#include "algo/running_norm.h"

namespace dyn {

class PpoLearner : public RolloutLearner {
 public:
  // with_latent: the policy's input is [s, latent] (the oracle PPO), else [s].
  PpoLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg, bool with_latent = false);
  ~PpoLearner() override;
  std::unique_ptr<EvalAgent> eval_agent(int64_t n) override;
  void visit_state(StateVisitor& v) override;

 private:
  class Agent;
  void collect_steps() override;
  int raw_dim() const { return spec().obs_dim + (with_latent_ ? spec().latent_dim : 0); }
  // raw [n, obs (+ latent)] ← the observations (and latents)
  void raw_input(const float* obs, const float* latent, int64_t n, float* raw) const;

  bool with_latent_;
  RunningNorm in_norm_;
  PolicyWorkspace roll_ws_;
  Buffer<float> latent_;  // [N, latent] the current sessions' latents
  Buffer<float> raw_;     // [N, raw] the policy's input before normalisation
};

}  // namespace dyn
