// The PPO update's minibatch plan and gathers (algo/minibatch.h).
#include <stdexcept>
#include <string>

#include "algo/minibatch.h"
#include "kernels/parallel_for.cuh"
#include "kernels/philox.h"

namespace dyn {

namespace {

// Minibatch row i: sample k = i % m of run r = i / m.
struct GatherSamples {
  SampleRows rows;
  const int32_t* samples;
  int64_t m;
  RunBlocks runs;
  DYN_HD void operator()(int64_t i) const {
    const int64_t r = i / m, s = samples[r * runs.index_stride + i % m];
    rows.copy(i, r * runs.rollout + s, r * runs.values + s);
  }
};

// Minibatch row i: step t, sequence j of run r's [T, Nm].
struct GatherSequences {
  SampleRows rows;
  const int32_t* envs;
  int64_t N, Nm, per_run;  // per_run = T·Nm
  RunBlocks runs;
  DYN_HD void operator()(int64_t i) const {
    const int64_t r = i / per_run, w = i % per_run;
    const int64_t s = (w / Nm) * N + envs[r * runs.index_stride + w % Nm];
    rows.copy(i, r * runs.rollout + s, r * runs.values + s);
  }
};

// Element i of the minibatch's starting states [R, Nm, H].
struct GatherStates {
  const int32_t* envs;
  int64_t N, Nm;
  int H;
  int64_t index_stride;
  const float* h0;  // [R, N, H]
  float* m_h0;
  DYN_HD void operator()(int64_t i) const {
    const int64_t r = i / (Nm * H), w = i % (Nm * H);
    m_h0[i] = h0[(r * N + envs[r * index_stride + w / H]) * H + w % H];
  }
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

// Sample (t, e) of a feed-forward rollout [T, N] (item i % T·N of segment i / T·N): its place in env e's order of
// steps falls in minibatch k, the last k with floor(T·k/M) <= place, which puts it at begin(k) + e · count(k) +
// (place − floor(T·k/M)) of its segment.
struct PerEnvSteps {
  RunDraws segment;
  uint32_t first_env;
  int T, M;
  int64_t N;
  int32_t* perm;
  DYN_HD void operator()(int64_t item) const {
    const int64_t s = item / (T * N), i = item % (T * N);
    const uint32_t seed = segment.seed(s), draw = segment.draw(s);
    const int64_t t = i / N, e = i % N;
    auto key = [&](int64_t u) {  // step u's key in env e's order
      return Philox(seed, kStreamShuffle, first_env + uint32_t(e), draw, uint32_t(u)).next_u32();
    };
    const int place = place_in_group(key, 0, T, t);
    const int64_t k = ((int64_t(place) + 1) * M - 1) / T;
    const int64_t first = int64_t(T) * k / M, count = int64_t(T) * (k + 1) / M - first;
    perm[s * T * N + N * first + e * count + (place - first)] = int32_t(i);
  }
};

// Env e of block e / M (item e % N of segment e / N): its place among the block's M keys is the minibatch that takes
// it.
struct PerEnvBlocks {
  RunDraws segment;
  uint32_t first_env;
  int M;
  int64_t N;
  int32_t* perm;
  DYN_HD void operator()(int64_t item) const {
    const int64_t s = item / N, e = item % N;
    const uint32_t seed = segment.seed(s), draw = segment.draw(s);
    auto key = [&](int64_t u) { return Philox(seed, kStreamShuffle, first_env + uint32_t(u), draw).next_u32(); };
    const int64_t block = e / M;
    const int place = place_in_group(key, block * M, M, e);
    perm[s * N + place * (N / M) + block] = int32_t(e);
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
                        uint32_t first_env, int32_t* perm, const RunDraws& runs) {
  const RunDraws segments = RunDraws::or_one(runs, seed, draw);
  parallel_for(b, int64_t(segments.count()) * steps * envs,
               PerEnvSteps{segments, first_env, steps, minibatches, envs, perm});
}

void draw_per_env_blocks(Backend b, uint32_t seed, StepRef draw, int64_t envs, int minibatches, uint32_t first_env,
                         int32_t* perm, const RunDraws& runs) {
  if (envs % minibatches != 0 || first_env % uint32_t(minibatches) != 0)
    throw std::invalid_argument(
        "train.shuffle = per_env with a recurrent policy: train.minibatches = " + std::to_string(minibatches) +
        " must divide this process's " + std::to_string(envs) + " envs and its first env " + std::to_string(first_env));
  const RunDraws segments = RunDraws::or_one(runs, seed, draw);
  parallel_for(b, int64_t(segments.count()) * envs, PerEnvBlocks{segments, first_env, minibatches, envs, perm});
}

void gather_samples(Backend b, const SampleRows& rows, const int32_t* samples, int64_t m, const RunBlocks& runs) {
  parallel_for(b, runs.runs * m, GatherSamples{rows, samples, m, runs});
}

void gather_sequences(Backend b, const SampleRows& rows, const int32_t* envs, int T, int64_t N, int64_t Nm, int H,
                      const float* h0, float* m_h0, const RunBlocks& runs) {
  parallel_for(b, runs.runs * T * Nm, GatherSequences{rows, envs, N, Nm, T * Nm, runs});
  parallel_for(b, runs.runs * Nm * H, GatherStates{envs, N, Nm, H, runs.index_stride, h0, m_h0});
}

}  // namespace dyn
