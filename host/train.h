// Training runs: builds the learner from the config, trains to the frame budget, evaluates every
// train.eval_interval iterations and at the end, and writes a run directory
//   <run.out_dir>/<env>-<algo>-<seed>-<YYYYmmdd-HHMMSS>/{config.toml, metrics.jsonl, metrics.csv, summary.json,
//                                                       checkpoint.safetensors}
// with one metrics row per iteration, written whole as it comes (a stopped run keeps everything so far), and the
// checkpoint a run resumes from.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "algo/belief_learner.h"
#include "algo/contrabar.h"
#include "algo/learner.h"
#include "algo/ppo_config.h"
#include "host/checkpoint.h"
#include "host/config.h"
#include "kernels/backend.h"
#include "sim/env.h"

namespace dyn {

// The env named by env.name with its session process (env.*), run.seed and its own env.* keys.
EnvConfig env_config_of(const Config& c);
// PPO's hyperparameters from the train.* keys, and the belief model's from the belief.* keys and run.algo.
PpoConfig ppo_config_of(const Config& c);
BeliefConfig belief_config_of(const Config& c);
// The contrabar.* keys as the learner's config.
ContrabarConfig contrabar_config_of(const Config& c);
// The learner run.algo names (ppo, oracle, rl2, dynamite, varibad, contrabar) on the configured env.
std::unique_ptr<Learner> make_learner(const Config& c, Backend b);

// The checkpoint file in a run directory: the learner's whole state and the driver's, written every
// train.checkpoint_interval iterations, at the end, and on SIGINT / SIGTERM.
inline constexpr const char* kCheckpointFile = "checkpoint.safetensors";

// Returns the process exit status (0; 1 when training fails; 128 + signal when SIGINT or SIGTERM stopped it after a
// checkpoint); progress goes to stderr. With run.seeds, every listed seed's run trains in this process, each with
// its own run directory, as that seed alone would (--out then gets a JSON array of the summaries). The summary goes to
// the run directory's summary.json and, when out_path is not empty, to out_path too (written atomically). With
// resume_dir, the run continues there from its checkpoint (cfg must be its config, the frame budget aside), appending
// to its metrics.
int run_training(const Config& cfg, Backend backend, const std::string& device, const std::string& out_path,
                 const std::string& resume_dir = "");
// The deterministic evaluations (SPEC §5) of a checkpoint's policy, as a run's: train.eval_envs ×
// train.eval_episodes fresh episodes (watched by `observer` when given: a trace), and train.eval_carried_episodes
// consecutive episodes with the agent's state carried (none when 0).
// The run's evaluations of a learner: train.eval_envs x train.eval_episodes fresh episodes (watched by `observer`
// when given), and train.eval_carried_episodes consecutive episodes with the agent's state carried (empty when 0).
EvalStats single_episode_evaluation(const Config& cfg, Learner& learner, EvalObserver* observer);
EvalStats carried_evaluation(const Config& cfg, Learner& learner);
struct CheckpointEvaluation {
  EvalStats single, carried;
};
CheckpointEvaluation evaluate_checkpoint(const Config& cfg, Backend backend, const Checkpoint& c,
                                         const std::string& what, EvalObserver* observer = nullptr);
// An evaluation's per-episode figures as JSON, [{"episode": k, "return": mean, "ci95": ..., "episodes": n}, ...]
// (k from 1), and printed one line each.
nlohmann::json per_episode_json(const EvalStats& e);
std::string per_episode_line(const EvalStats& e, const char* what);
void print_per_episode(const EvalStats& e, const char* what);

}  // namespace dyn
