// --trace: per-step records of an evaluation's first few envs, as JSON Lines (one object per env and step) — what
// scripts/inspect draws: the observation acted on, the action, the reward, the ground-truth session id, session end
// and latent, and what the agent believed (its AgentColumns: a belief's mean and log-variance, the termination
// head's logit, the gridworld's decoded goal rewards).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "algo/evaluate.h"
#include "kernels/backend.h"

namespace dyn {

class EvalTrace : public EvalObserver {
 public:
  // Records envs [0, envs) of a backend-`b` evaluation.
  EvalTrace(Backend b, int64_t envs);
  void acted(const EnvSpec& spec, int episode, int t, const float* obs, const float* latent, const ActionBatch& actions,
             const std::vector<AgentColumns>& agent) override;
  void stepped(const EnvSpec& spec, const StepBatch& out) override;
  // The records so far, one JSON object per line.
  const std::string& jsonl() const { return text_; }
  int64_t records() const { return records_; }

 private:
  Backend b_;
  int64_t envs_;
  std::vector<nlohmann::json> pending_;  // [envs] this step's records, without the step's outcome yet
  std::string text_;
  int64_t records_ = 0;
};

}  // namespace dyn
