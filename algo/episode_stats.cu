// EpisodeStats: one functor per step over the envs; the summaries reduce the per-env sums on the host (R·N records).
#include <cmath>
#include <limits>

#include "algo/episode_stats.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

struct AccumulateEpisodes {
  const float* r;
  const uint8_t *trunc, *term;
  const int32_t* sid;
  float* running;
  EpisodeSums* acc;
  DYN_HD void operator()(int64_t i) const {
    const float g = running[i] + r[i];
    if ((trunc && trunc[i]) || (term && term[i])) {
      acc[i].ret += g;
      acc[i].ret_sq += double(g) * g;
      acc[i].sessions += sid ? sid[i] + 1 : 1;
      acc[i].episodes += 1;
      running[i] = 0.0f;
    } else {
      running[i] = g;
    }
  }
};

}  // namespace

double EvalStats::metric(const std::string& name) const {
  for (const auto& [k, v] : extra)
    if (k == name) return v;
  return std::numeric_limits<double>::quiet_NaN();
}

EpisodeStats::EpisodeStats(Backend b, int64_t n, int runs)
    : b_(b), n_(n), runs_(runs), running_(b, size_t(n * runs)), sums_(b, size_t(n * runs)) {
  restart();
}

void EpisodeStats::clear() { sums_.zero(); }

void EpisodeStats::restart() {
  running_.zero();
  sums_.zero();
}

void EpisodeStats::after_step(const float* reward, const uint8_t* truncated, const uint8_t* terminated,
                              const int32_t* session_id) {
  parallel_for(b_, n_ * runs_,
               AccumulateEpisodes{reward, truncated, terminated, session_id, running_.data(), sums_.data()});
}

namespace {

// The summary of envs [first, first + count) of per-env sums, in env order.
EvalStats summarize(const EpisodeSums* sums, int64_t first, int64_t count) {
  EpisodeSums total{0, 0, 0, 0};
  EvalStats out;
  out.env_returns.reserve(size_t(count));
  for (int64_t e = first; e < first + count; ++e) {
    const EpisodeSums& s = sums[e];
    out.env_returns.push_back(s.episodes > 0 ? s.ret / s.episodes : std::numeric_limits<double>::quiet_NaN());
    total.ret += s.ret;
    total.ret_sq += s.ret_sq;
    total.sessions += s.sessions;
    total.episodes += s.episodes;
  }
  out.episodes = int64_t(total.episodes);
  if (total.episodes <= 0) {
    out.mean_return = std::numeric_limits<double>::quiet_NaN();
    return out;
  }
  const double m = total.ret / total.episodes;
  const double var = total.episodes > 1 ? (total.ret_sq - total.episodes * m * m) / (total.episodes - 1) : 0.0;
  out.mean_return = m;
  out.std = std::sqrt(var > 0 ? var : 0);
  out.ci95 = 1.96 * out.std / std::sqrt(total.episodes);
  out.mean_sessions = total.sessions / total.episodes;
  return out;
}

}  // namespace

std::vector<EvalStats> EpisodeStats::summaries(bool all_envs) const {
  const std::vector<EpisodeSums> sums = sums_.to_host();  // the one read
  if (all_envs) return {summarize(sums.data(), 0, n_ * runs_)};
  std::vector<EvalStats> out;
  for (int r = 0; r < runs_; ++r) out.push_back(summarize(sums.data(), r * n_, n_));
  return out;
}

}  // namespace dyn
