// What a recurrent agent carries from one env step to the next (RL², the belief encoders): the previous action and
// reward, whether an episode starts at the next step, the recurrent state and the conditioning input (the previous
// session's final belief), advanced by one call after each env step. action_feature is how an action is fed back
// into a network: a one-hot of a discrete action, the vector of a continuous one, zeros where an episode starts.
#pragma once

#include <cstdint>

#include "kernels/buffer.h"
#include "kernels/hd.h"
#include "kernels/state_io.h"
#include "sim/env.h"

namespace dyn {

// Feature k (< A) of the previous action of one env: index (discrete) or value [A] (continuous).
template <class T>
DYN_HD T action_feature(bool discrete, int32_t index, const T* value, bool start, int k) {
  if (start) return T(0);
  return discrete ? (index == k ? T(1) : T(0)) : value[k];
}

class AgentCarry {
 public:
  AgentCarry() = default;
  // n envs of `spec`; a recurrent state of `hidden` units and a conditioning input of `cond_dim` (either may be 0);
  // runs: a seed batch's runs side by side, n / runs envs each (checkpointed run by run).
  AgentCarry(Backend b, const EnvSpec& spec, int64_t n, int hidden, int cond_dim, int runs = 1);
  // Every env starts an episode at the next step: start = 1, previous action and reward, state and condition 0.
  void reset();
  // After an env step: the action and reward become the previous ones; where the episode ended (truncated or
  // terminated) the next step starts one and the conditioning input is cleared.
  void after_step(const ActionBatch& actions, const float* reward, const uint8_t* truncated, const uint8_t* terminated);
  // The previous actions' features, [n, A] at columns [c0, c0 + A) of rows `stride` wide (ignore_start: as if no
  // episode started, for a bootstrap step that continues the finished episode).
  void action_features(float* out, int stride, int c0, bool ignore_start = false) const;

  ActionBatch prev_action() const { return {prev_index_.data(), prev_value_.data()}; }
  const float* prev_reward() const { return prev_reward_.data(); }  // [N]
  const uint8_t* start() const { return start_.data(); }            // [N]
  float* hidden() { return h_.data(); }                             // [N, hidden]
  const float* hidden() const { return h_.data(); }
  float* cond() { return cond_.data(); }  // [N, cond_dim]
  int64_t size() const { return n_; }
  // Run `run`'s rows, as that run alone has them.
  void visit_state(StateVisitor& v, int run = 0) {
    v.share("prev_index", prev_index_, run, runs_);
    v.share("prev_value", prev_value_, run, runs_);
    v.share("prev_reward", prev_reward_, run, runs_);
    v.share("start", start_, run, runs_);
    v.share("hidden", h_, run, runs_);
    v.share("cond", cond_, run, runs_);
  }

 private:
  Backend b_ = Backend::cpu;
  int64_t n_ = 0;
  bool discrete_ = true;
  int a_ = 0, cond_dim_ = 0, runs_ = 1;
  Buffer<int32_t> prev_index_;  // [N] discrete
  Buffer<float> prev_value_;    // [N, A] continuous
  Buffer<float> prev_reward_;   // [N]
  Buffer<uint8_t> start_;       // [N]
  Buffer<float> h_, cond_;      // [N, hidden], [N, cond_dim]
};

}  // namespace dyn
