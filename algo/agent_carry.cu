// AgentCarry: one functor after each step, one for the action features.
#include "algo/agent_carry.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

struct CarryStep {
  bool discrete;
  int A, C;
  const int32_t* index;
  const float *value, *reward;
  const uint8_t *trunc, *term;
  int32_t* prev_index;
  float *prev_value, *prev_reward, *cond;
  uint8_t* start;
  DYN_HD void operator()(int64_t i) const {
    if (discrete)
      prev_index[i] = index[i];
    else
      for (int k = 0; k < A; ++k) prev_value[i * A + k] = value[i * A + k];
    prev_reward[i] = reward[i];
    const bool done = (trunc && trunc[i]) || (term && term[i]);
    start[i] = done;
    if (done)
      for (int c = 0; c < C; ++c) cond[i * C + c] = 0.0f;
  }
};

struct ActionFeatures {
  bool discrete;
  int A, stride, c0;
  const int32_t* index;
  const float* value;
  const uint8_t* start;
  float* out;
  DYN_HD void operator()(int64_t i) const {
    for (int k = 0; k < A; ++k)
      out[i * stride + c0 + k] =
          action_feature(discrete, discrete ? index[i] : 0, discrete ? value : value + i * A, start && start[i], k);
  }
};

struct Fill {
  uint8_t* p;
  uint8_t v;
  DYN_HD void operator()(int64_t i) const { p[i] = v; }
};

}  // namespace

AgentCarry::AgentCarry(Backend b, const EnvSpec& spec, int64_t n, int hidden, int cond_dim, int runs)
    : b_(b),
      n_(n),
      discrete_(spec.discrete()),
      a_(spec.action_dim),
      cond_dim_(cond_dim),
      runs_(runs),
      prev_index_(b, spec.discrete() ? size_t(n) : 0),
      prev_value_(b, spec.discrete() ? 0 : size_t(n) * spec.action_dim),
      prev_reward_(b, size_t(n)),
      start_(b, size_t(n)),
      h_(b, size_t(n) * hidden),
      cond_(b, size_t(n) * cond_dim) {
  reset();
}

void AgentCarry::reset() {
  prev_index_.zero();
  prev_value_.zero();
  prev_reward_.zero();
  h_.zero();
  cond_.zero();
  parallel_for(b_, n_, Fill{start_.data(), 1});
}

void AgentCarry::after_step(const ActionBatch& actions, const float* reward, const uint8_t* truncated,
                            const uint8_t* terminated) {
  parallel_for(b_, n_,
               CarryStep{discrete_, a_, cond_dim_, actions.index, actions.value, reward, truncated, terminated,
                         prev_index_.data(), prev_value_.data(), prev_reward_.data(), cond_.data(), start_.data()});
}

void AgentCarry::action_features(float* out, int stride, int c0, bool ignore_start) const {
  parallel_for(b_, n_,
               ActionFeatures{discrete_, a_, stride, c0, prev_index_.data(), prev_value_.data(),
                              ignore_start ? nullptr : start_.data(), out});
}

}  // namespace dyn
