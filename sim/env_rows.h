// The per-env rows of every BatchEnv's reset and step kernels, written once over an env's stages (sim/env.h), and the
// continuous envs' random policy: a BatchEnv runs them with parallel_for (one env per CUDA thread or host loop
// iteration), instantiated for its own env type E.
#pragma once

#include <cstdint>

#include "kernels/hd.h"
#include "kernels/step_ref.h"
#include "sim/env.h"

namespace dyn {

// Row i of a batch is the env BatchRows::key(i) names (sim/env.h): its Philox streams are keyed by that seed and
// global index, so a data-parallel rank holding envs [first_env, first_env + N) steps exactly the envs one process
// with all of them would, and a seed batch's run exactly the envs that run alone would.

// Env i starts an episode at global step 0: its state, first observation [N, obs] and, unless null, its latent.
template <class E>
struct ResetRows {
  E e;
  typename E::State* state;  // [N]
  float *obs, *latent;
  int obs_dim, latent_dim;
  BatchRows rows;
  DYN_HD void operator()(int64_t i) const {
    typename E::State s{};  // zero-initialised, padding included: a checkpoint's bytes are the state's alone
    e.reset(s, rows.key(i), 0);
    e.observe(s, obs + i * obs_dim);
    if (latent) e.latent(s, latent + i * latent_dim);
    state[i] = s;
  }
};

// Env i takes its action (an index or an action_dim-wide vector, whichever the batch holds) at the global step the
// StepRef reads.
template <class E>
struct StepRows {
  E e;
  typename E::State* state;  // [N]
  ActionBatch actions;
  StepBatch out;
  int obs_dim, action_dim, latent_dim;
  StepRef step;
  BatchRows rows;
  DYN_HD void operator()(int64_t i) const {
    typename E::State s = state[i];
    env_step(e, s, actions.index ? actions.index[i] : 0, actions.value ? actions.value + i * action_dim : nullptr,
             rows.key(i), step.get(), StepRow::of(out, i, obs_dim, latent_dim));
    state[i] = s;
  }
};

// The continuous envs' random policy over the batch: row i's action_dim values into actions [N, action_dim].
struct UniformRandomActions {
  float* actions;
  int action_dim;
  uint32_t step;
  BatchRows rows;
  DYN_HD void operator()(int64_t i) const {
    uniform_random_action(rows.key(i), step, action_dim, actions + i * action_dim);
  }
};

}  // namespace dyn
