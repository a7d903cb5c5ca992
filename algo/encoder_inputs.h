// The per-step inputs of a recurrent context encoder (the belief model's, CPC's): a batch of whole stored episodes,
// and for each latent row the observation, the previous action's features (one-hot, or the vector) and reward —
// zero where an episode starts — with the GRU's reset flags. One place for what the belief model and ContraBAR's
// encoder read, online and offline.
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "sim/env.h"

namespace dyn {

// A batch of B whole episodes of T transitions, time-major, on the model's backend; for a seed batch, `runs` such
// batches one after another (every array [S, ·] seed-major: run s's block follows run s − 1's).
template <class T>
struct EpisodeBatchView {
  int steps = 0, batch = 0;       // T, B (per run)
  const T* obs = nullptr;         // [T + 1, B, obs]: s_0 .. s_T (s_T: the observation the episode ended on)
  const int32_t* act = nullptr;   // [T, B]
  const T* rew = nullptr;         // [T, B] raw rewards
  const int32_t* sid = nullptr;   // [T, B] ground-truth session of each transition
  const uint8_t* send = nullptr;  // [T, B] ground truth: the transition ends its session
  const T* next_obs = nullptr;    // [T, B, obs] where each action led (the decoder's s_{j+1}), when an auto-reset
                                  // makes obs[j + 1] differ from it; nullptr: obs[j + 1]
  const T* act_value = nullptr;   // [T, B, A] continuous actions (then act is unused)
  int runs = 1;                   // S
};

// Run `run`'s block of a seed batch's episodes (obs_dim and action_dim: the env's widths), as a one-run view.
template <class T>
EpisodeBatchView<T> episodes_of_run(const EpisodeBatchView<T>& all, int run, int obs_dim, int action_dim) {
  const int64_t L = int64_t(all.steps + 1) * all.batch * run, TB = int64_t(all.steps) * all.batch * run;
  EpisodeBatchView<T> v = all;
  v.runs = 1;
  v.obs = all.obs + L * obs_dim;
  v.act = all.act ? all.act + TB : nullptr;
  v.rew = all.rew + TB;
  v.sid = all.sid + TB;
  v.send = all.send + TB;
  v.next_obs = all.next_obs ? all.next_obs + TB * obs_dim : nullptr;
  v.act_value = all.act_value ? all.act_value + TB * action_dim : nullptr;
  return v;
}

// Latent rows [T+1, B] of whole episodes: latent t sees a_{t−1} and r_{t−1}; t = 0 starts. Writes prev_a [R]
// (discrete), prev_a_value [R, A] (continuous, when ep.act_value), prev_r [R] and start [R], R = (T+1)·B — [S, R]
// for a seed batch's runs.
template <class T>
void episode_inputs(Backend b, const EpisodeBatchView<T>& ep, int actions, int32_t* prev_a, T* prev_a_value, T* prev_r,
                    uint8_t* start);

// The encoder's raw inputs of R rows: xs [R, obs] = obs, xa [R, A] the previous action's features, xr [R] the
// previous reward (both zero where start), reset [R] = start.
template <class T>
void encoder_inputs(Backend b, int obs_dim, int actions, bool discrete, const T* obs, const int32_t* prev_a,
                    const T* prev_a_value, const T* prev_r, const uint8_t* start, int64_t rows, T* xs, T* xa, T* xr,
                    uint8_t* reset);

// An encoder shape (BeliefShape, CpcShape) with the env's sizes: observation width, actions (count or width) and
// their kind.
template <class Shape>
Shape with_env_sizes(Shape s, const EnvSpec& spec) {
  s.obs = spec.obs_dim;
  s.actions = spec.action_dim;
  s.discrete_actions = spec.discrete();
  return s;
}

// A learner's config (BeliefConfig, ContrabarConfig) with its encoder shape sized for the env.
template <class LearnerConfig>
LearnerConfig with_env_shape(LearnerConfig c, const EnvSpec& spec) {
  c.shape = with_env_sizes(c.shape, spec);
  return c;
}

}  // namespace dyn
