// Per-env episode statistics on the backend, the one tracker of training returns, evaluations and scripted rollouts:
// each env's running return, and per env the sums over its finished episodes (return, its square, sessions, count),
// read back once when a summary is wanted. A seed batch's runs share one tracker (one launch per step), each run
// summarised over its own envs.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/buffer.h"
#include "kernels/state_io.h"

namespace dyn {

struct EpisodeSums {
  double ret, ret_sq, sessions, episodes;
};

// A summary of finished episodes: mean return ± 95% CI (normal approximation), std, mean sessions per episode.
struct EvalStats {
  int64_t episodes = 0;
  double mean_return = 0, ci95 = 0, std = 0;
  double mean_sessions = 0;
  std::vector<std::pair<std::string, double>> extra;  // learner-specific figures (e.g. the goal probe's accuracy)
  std::vector<EvalStats> per_episode;                 // an evaluation's k-th episode of every env (algo/evaluate.h)
  std::vector<double> env_returns;                    // [N] each env's mean return over its finished episodes
  double metric(const std::string& name) const;       // an extra figure; NaN when absent
};

class EpisodeStats {
 public:
  EpisodeStats() = default;
  // n envs per run, of `runs` runs side by side (run r's envs [r·n, (r+1)·n))
  EpisodeStats(Backend b, int64_t n, int runs = 1);
  // Forgets the finished episodes (the running returns go on).
  void clear();
  // Every env starts a new episode: running returns to 0, and the sums cleared.
  void restart();
  // After a step: adds reward [R·N] to each running return; where truncated or terminated (either may be nullptr)
  // the episode is added to its env's sums, with session_id [R·N] + 1 sessions (session_id may be nullptr).
  void after_step(const float* reward, const uint8_t* truncated, const uint8_t* terminated, const int32_t* session_id);
  // The finished episodes so far, of every env (one read).
  EvalStats summary() const { return summaries(true)[0]; }
  // Each run's finished episodes so far, over its own envs (one read).
  std::vector<EvalStats> summaries() const { return summaries(false); }
  const EpisodeSums* sums() const { return sums_.data(); }  // [R·N] (backend)
  // Run `run`'s envs: the arrays that run alone has.
  void visit_state(StateVisitor& v, int run = 0) {
    v.share("running", running_, run, runs_);
    v.bytes("sums", sums_, run, runs_);
  }

 private:
  std::vector<EvalStats> summaries(bool all_envs) const;  // one per run, or one over every env

  Backend b_ = Backend::cpu;
  int64_t n_ = 0;  // envs per run
  int runs_ = 1;
  Buffer<float> running_;     // [R·N]
  Buffer<EpisodeSums> sums_;  // [R·N]
};

}  // namespace dyn
