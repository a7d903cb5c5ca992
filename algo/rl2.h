// RL² (Duan et al. 2016; Wang et al. 2016) on any env (`--algo rl2`): a GRU over (s_t, a_{t−1}, r_{t−1}) — the
// previous action one-hot (discrete) or as its vector (continuous), zeros where an episode starts — whose state
// feeds the actor and the critic, trained with the PPO loss through the GRU (BPTT over the stored chunk, PpoCore's
// recurrent policy). The state is carried across rollout chunks (AgentCarry) and restarts where an episode starts.
// With seeds, a seed batch (algo/rollout_learner.h): S runs side by side, each with its own envs, observation
// normaliser, carried state and PpoCore part — each step one batched pass of the embedding, the GRU and the heads
// over the S·N rows — each run's figures those of the run alone (bit for bit on the CPU).
#pragma once

#include <cstdint>
#include <vector>

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
  // seeds: a seed batch's runs (empty: one run, env.seed; else seeds[0] must be env.seed).
  Rl2Learner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg, Rl2Shape shape = {},
             const std::vector<uint32_t>& seeds = {});
  ~Rl2Learner() override;
  std::unique_ptr<EvalAgent> eval_agent(int64_t n) override { return run_eval_agent(n, 0); }
  std::unique_ptr<EvalAgent> run_eval_agent(int64_t n, int run) override;
  void visit_run_state(StateVisitor& v, int run) override;

 private:
  class Agent;
  void collect_steps() override;
  int in_dim() const { return spec().obs_dim + spec().action_dim + 1; }
  // x [R·n, in] ← [obs normalised by each run's statistics, the carry's previous-action features and reward (zeros
  // where it starts, unless ignore_start)] for runs [run0, run0 + R), n rows each
  void step_input(const AgentCarry& carry, const float* obs, int64_t n, int run0, int R, bool ignore_start,
                  float* obs_scratch, float* x) const;

  Rl2Shape shape_;
  RunNorms obs_norms_;                  // [S]
  AgentCarry carry_;                    // S·N rows
  PolicyWorkspace roll_ws_, boot_ws_;   // rollout steps; bootstrap-value steps
  Buffer<float> obs_norm_buf_;          // [S·N, obs]
  Buffer<float> x_extra_;               // [S·N, in] inputs of the extra steps (bootstrap values)
  Buffer<float> h_next_;                // [S·N, H] the extra steps' scratch state
};

}  // namespace dyn
