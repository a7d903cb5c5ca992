// Random episode batches for the belief-model tests: B episodes of T transitions with random observations,
// rewards, actions and session boundaries (host vectors, time-major [T(+1), B, ·]).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace dyn {

// A batch of B random episodes of T transitions with random session boundaries (host vectors, [T(+1), B, ·]).
struct HostEpisodes {
  int steps, batch;
  std::vector<double> obs, rew;
  std::vector<int32_t> act, sid;
  std::vector<uint8_t> send;
};

inline HostEpisodes random_episodes(int steps, int batch, int max_sessions, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::uniform_int_distribution<int> action(0, 4);
  HostEpisodes e{steps, batch, {}, {}, {}, {}, {}};
  e.obs.resize(size_t(steps + 1) * batch * 6);
  for (double& v : e.obs) v = normal(rng);
  e.rew.resize(size_t(steps) * batch);
  for (double& v : e.rew) v = normal(rng);
  e.act.resize(size_t(steps) * batch);
  for (int32_t& a : e.act) a = action(rng);
  e.sid.resize(size_t(steps) * batch);
  e.send.resize(size_t(steps) * batch);
  std::uniform_real_distribution<double> u(0, 1);
  for (int b = 0; b < batch; ++b) {
    int s = 0;
    for (int j = 0; j < steps; ++j) {
      e.sid[size_t(j) * batch + b] = s;
      const bool last = j == steps - 1;
      const bool end = last || (s + 1 < max_sessions && j > 0 && u(rng) < 0.25);
      e.send[size_t(j) * batch + b] = end;
      if (end) ++s;
    }
  }
  return e;
}

}  // namespace dyn
