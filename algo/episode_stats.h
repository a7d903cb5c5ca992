// Per-env episode statistics on the backend, the one tracker of training returns, evaluations and scripted rollouts:
// each env's running return, and per env the sums over its finished episodes (return, its square, sessions, count),
// read back once when a summary is wanted.
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
  EpisodeStats(Backend b, int64_t n);
  // Forgets the finished episodes (the running returns go on).
  void clear();
  // Every env starts a new episode: running returns to 0, and the sums cleared.
  void restart();
  // After a step: adds reward [N] to each running return; where truncated or terminated (either may be nullptr)
  // the episode is added to its env's sums, with session_id [N] + 1 sessions (session_id may be nullptr).
  void after_step(const float* reward, const uint8_t* truncated, const uint8_t* terminated, const int32_t* session_id);
  // The finished episodes so far (one read).
  EvalStats summary() const;
  const EpisodeSums* sums() const { return sums_.data(); }  // [N] (backend)
  void visit_state(StateVisitor& v) {
    v.buffer("running", running_);
    v.bytes("sums", sums_);
  }

 private:
  Backend b_ = Backend::cpu;
  int64_t n_ = 0;
  Buffer<float> running_;     // [N]
  Buffer<EpisodeSums> sums_;  // [N]
};

}  // namespace dyn
