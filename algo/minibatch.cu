// The PPO update's minibatch plan and gathers (algo/minibatch.h).
#include <stdexcept>
#include <string>

#include "algo/minibatch.h"
#include "kernels/parallel_for.cuh"

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

}  // namespace

MinibatchPlan::MinibatchPlan(int64_t items_, int minibatches_) : items(items_), minibatches(minibatches_) {
  if (minibatches < 1 || minibatches > items)
    throw std::invalid_argument("train.minibatches = " + std::to_string(minibatches) + ": allowed 1 to " +
                                std::to_string(items) + " (the items each epoch shuffles)");
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
