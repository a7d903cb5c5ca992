// RL² (Duan et al. 2016; Wang et al. 2016) on any env (`--algo rl2`): a GRU over (s_t, a_{t−1}, r_{t−1}) — the
// previous action one-hot (discrete) or as its vector (continuous), zeros where an episode starts — whose state
// feeds the actor and the critic, trained with the PPO loss through the GRU (BPTT over the stored chunk, PpoCore's
// recurrent policy). The state is carried across rollout chunks (AgentCarry) and restarts where an episode starts.
#pragma once

#include <cstdint>

#include "algo/agent_carry.h"
#include "algo/rollout_learner.h"
#include "algo/running_norm.h"

namespace dyn {

struct Rl2Shape {
  int embed = 24;   // Linear + ReLU embedding of [s, a, r]
  int hidden = 64;  // GRU hidden
};

class Rl2Learner : public RolloutLearner {
 public:
  Rl2Learner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg, Rl2Shape shape = {});
  ~Rl2Learner() override;
  std::unique_ptr<EvalAgent> eval_agent(int64_t n) override;
  void visit_state(StateVisitor& v) override;

 private:
  class Agent;
  void collect_steps() override;
  int in_dim() const { return spec().obs_dim + spec().action_dim + 1; }
  // x [n, in] ← [normalised obs, the carry's previous-action features and reward (zeros where it starts, unless
  // ignore_start)]
  void step_input(const AgentCarry& carry, const float* obs, int64_t n, bool ignore_start, float* obs_scratch,
                  float* x) const;

  Rl2Shape shape_;
  RunningNorm obs_norm_;
  AgentCarry carry_;
  PolicyWorkspace roll_ws_, boot_ws_;  // rollout steps; bootstrap-value steps
  Buffer<float> obs_norm_buf_;         // [N, obs]
  Buffer<float> x_extra_;              // [N, in] inputs of the extra steps (bootstrap values)
  Buffer<float> h_next_;               // [N, H] the extra steps' scratch state
};

}  // namespace dyn
