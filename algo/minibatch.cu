// The PPO update's minibatch plan and gathers (algo/minibatch.h).
#include <stdexcept>
#include <string>

#include "algo/minibatch.h"
#include "kernels/parallel_for.cuh"
#include "kernels/philox.h"

namespace dyn {

namespace {

struct GatherSamples {
  SampleRows rows;
  const int32_t* samples;
  DYN_HD void operator()(int64_t i) const { rows.copy(i, samples[i]); }
};

struct GatherSequences {
  SampleRows rows;
  const int32_t* envs;
  int64_t N, Nm;
  DYN_HD void operator()(int64_t i) const { rows.copy(i, (i / Nm) * N + envs[i % Nm]); }
};

struct GatherStates {
  const int32_t* envs;
  int H;
  const float* h0;
  float* m_h0;
  DYN_HD void operator()(int64_t i) const { m_h0[i] = h0[int64_t(envs[i / H]) * H + i % H]; }
};

// Item `mine` of a group [first, first + count): its place in the group's order, the number of items whose key
// (key(u)) is smaller, or equal with a smaller index.
template <class Key>
DYN_HD int place_in_group(const Key& key, int64_t first, int64_t count, int64_t mine) {
  const uint32_t k = key(mine);
  int place = 0;
  for (int64_t u = first; u < first + count; ++u) {
    const uint32_t other = key(u);
    place += (other < k || (other == k && u < mine)) ? 1 : 0;
  }
  return place;
}

// Sample (t, e) of a feed-forward rollout [T, N]: its place in env e's order of steps falls in minibatch k, the last
// k with floor(T·k/M) <= place, which puts it at begin(k) + e · count(k) + (place − floor(T·k/M)).
struct PerEnvSteps {
  uint32_t seed, first_env;
  StepRef draw;
  int T, M;
  int64_t N;
  int32_t* perm;
  DYN_HD uint32_t key(int64_t e, int64_t t) const {  // step t's key in env e's order
    return Philox(seed, kStreamShuffle, first_env + uint32_t(e), draw.get(), uint32_t(t)).next_u32();
  }
  DYN_HD void operator()(int64_t i) const {
    const int64_t t = i / N, e = i % N;
    const int place = place_in_group([&](int64_t u) { return key(e, u); }, 0, T, t);
    const int64_t k = ((int64_t(place) + 1) * M - 1) / T;
    const int64_t first = int64_t(T) * k / M, count = int64_t(T) * (k + 1) / M - first;
    perm[N * first + e * count + (place - first)] = int32_t(i);
  }
};

// Env e of block e / M: its place among the block's M keys is the minibatch that takes it.
struct PerEnvBlocks {
  uint32_t seed, first_env;
  StepRef draw;
  int M;
  int64_t N;
  int32_t* perm;
  DYN_HD uint32_t key(int64_t e) const {
    return Philox(seed, kStreamShuffle, first_env + uint32_t(e), draw.get()).next_u32();
  }
  DYN_HD void operator()(int64_t e) const {
    const int64_t block = e / M;
    const int place = place_in_group([&](int64_t u) { return key(u); }, block * M, M, e);
    perm[place * (N / M) + block] = int32_t(e);
  }
};

}  // namespace

MinibatchPlan::MinibatchPlan(int64_t items_, int minibatches_)
    : items(items_), minibatches(minibatches_), groups(items_) {
  if (minibatches < 1 || minibatches > items)
    throw std::invalid_argument("train.minibatches = " + std::to_string(minibatches) + ": allowed 1 to " +
                                std::to_string(items) + " (the items each epoch shuffles)");
}

MinibatchPlan MinibatchPlan::per_env_steps(int steps, int64_t envs, int minibatches) {
  if (minibatches < 1 || minibatches > steps)
    throw std::invalid_argument("train.minibatches = " + std::to_string(minibatches) +
                                " with train.shuffle = per_env: allowed 1 to train.rollout_steps = " +
                                std::to_string(steps) + " (every minibatch takes steps of every env)");
  MinibatchPlan p(int64_t(steps) * envs, minibatches);
  p.groups = steps;
  p.unit = envs;
  return p;
}

void draw_per_env_steps(Backend b, uint32_t seed, StepRef draw, int steps, int64_t envs, int minibatches,
                        uint32_t first_env, int32_t* perm) {
  parallel_for(b, int64_t(steps) * envs, PerEnvSteps{seed, first_env, draw, steps, minibatches, envs, perm});
}

void draw_per_env_blocks(Backend b, uint32_t seed, StepRef draw, int64_t envs, int minibatches, uint32_t first_env,
                         int32_t* perm) {
  if (envs % minibatches != 0 || first_env % uint32_t(minibatches) != 0)
    throw std::invalid_argument(
        "train.shuffle = per_env with a recurrent policy: train.minibatches = " + std::to_string(minibatches) +
        " must divide this process's " + std::to_string(envs) + " envs and its first env " + std::to_string(first_env));
  parallel_for(b, envs, PerEnvBlocks{seed, first_env, draw, minibatches, envs, perm});
}

void gather_samples(Backend b, const SampleRows& rows, const int32_t* samples, int64_t m) {
  parallel_for(b, m, GatherSamples{rows, samples});
}

void gather_sequences(Backend b, const SampleRows& rows, const int32_t* envs, int T, int64_t N, int64_t Nm, int H,
                      const float* h0, float* m_h0) {
  parallel_for(b, int64_t(T) * Nm, GatherSequences{rows, envs, N, Nm});
  parallel_for(b, Nm * H, GatherStates{envs, H, h0, m_h0});
}

}  // namespace dyn
