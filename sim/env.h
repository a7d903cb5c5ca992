// The batched-environment contract: what every environment offers the learners (SPEC §2).
//
// - EnvSpec: observation width, action kind and width, latent width, horizon.
// - StepBatch: one step's outputs for N envs, [N, ·] in backend memory.
// - env_step<E>: the recipe every env follows, written once — act (apply the action, simulate, reward) → session
//   process → (time limit: new episode | session end: the latent moves) → observe. An env is a struct of DYN_HD
//   stages (act, reset, switch_session, observe, latent) over its State; kernels stay monomorphic.
// - BatchEnv: N envs of one kind on one backend, behind a host-side interface (one virtual call per batched call,
//   so a CUDA Graph captures the kernel it launches), made by name from the registry (sim/env.cpp). A new env is
//   one file with its stages and its BatchEnv, and one line in the registry.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/batch_rows.h"
#include "kernels/hd.h"
#include "kernels/philox.h"
#include "kernels/state_io.h"
#include "kernels/step_ref.h"
#include "sim/session.h"

namespace dyn {

enum class ActionKind : uint8_t { discrete, continuous };

struct EnvSpec {
  std::string name;
  int obs_dim = 0;
  ActionKind action_kind = ActionKind::discrete;
  int action_dim = 0;       // discrete: the number of actions; continuous: the action vector's width
  int latent_dim = 0;       // the ground-truth latent of the current session (oracle inputs, probes)
  int horizon = 0;          // H
  bool has_oracle = false;  // a scripted oracle policy exists
  bool discrete() const { return action_kind == ActionKind::discrete; }
};

// Actions of N envs in backend memory: indices [N] (discrete) or vectors [N, A] (continuous); the other is null.
struct ActionBatch {
  const int32_t* index = nullptr;
  const float* value = nullptr;
};

// Where actions are written (a policy's output, scripted actions): the same layout, writable.
struct ActionBuffers {
  int32_t* index = nullptr;  // [N] discrete
  float* value = nullptr;    // [N, A] continuous
  ActionBatch batch() const { return {index, value}; }
  // Rows [row0, …) of the batch (actions of action_dim values each, where continuous).
  ActionBuffers rows(int64_t row0, int action_dim) const {
    return {index ? index + row0 : nullptr, value ? value + row0 * action_dim : nullptr};
  }
};

// One batched step's outputs, [N, ·] in backend memory; final_obs and latent may be nullptr.
struct StepBatch {
  float* obs = nullptr;            // [N, obs] the next observation (a new episode's first after a time limit)
  float* reward = nullptr;         // [N]
  uint8_t* terminated = nullptr;   // [N]
  uint8_t* truncated = nullptr;    // [N] time limit
  uint8_t* session_end = nullptr;  // [N] d_t: this transition ended its session
  int32_t* session_id = nullptr;   // [N] the session this transition belonged to
  float* final_obs = nullptr;      // [N, obs] where the action led, before any auto-reset replaces it in obs
  float* latent = nullptr;         // [N, latent] the ground-truth latent after the step
  static StepBatch of(float* obs, float* reward, uint8_t* terminated, uint8_t* truncated, uint8_t* session_end,
                      int32_t* session_id, float* final_obs = nullptr, float* latent = nullptr) {
    return StepBatch{obs, reward, terminated, truncated, session_end, session_id, final_obs, latent};
  }
};

// One env's row of a StepBatch.
struct StepRow {
  float *obs, *reward;
  uint8_t *terminated, *truncated, *session_end;
  int32_t* session_id;
  float *final_obs, *latent;
  DYN_HD static StepRow of(const StepBatch& b, int64_t i, int obs_dim, int latent_dim) {
    return StepRow{b.obs + i * obs_dim,
                   b.reward + i,
                   b.terminated + i,
                   b.truncated + i,
                   b.session_end + i,
                   b.session_id + i,
                   b.final_obs ? b.final_obs + i * obs_dim : nullptr,
                   b.latent ? b.latent + i * latent_dim : nullptr};
  }
};

// The random policy of the continuous-action envs: each of the action_dim values uniform in [−1, 1], drawn from
// Philox(key.seed, kStreamPolicy, key.env, step).
DYN_HD void uniform_random_action(EnvKey key, uint32_t step, int action_dim, float* action) {
  Philox rng(key.seed, kStreamPolicy, key.env, step);
  for (int k = 0; k < action_dim; ++k) action[k] = 2.0f * rng.uniform() - 1.0f;
}

// One step of the env keyed `key` at global step `step`: the recipe of every environment. E provides
//   float act(State&, int32_t index, const float* value) const   apply the action, simulate, return the reward
//   void reset(State&, EnvKey, uint32_t episode_step) const       a new episode (its session process too)
//   void switch_session(State&, EnvKey, uint32_t step) const       the latent moves at a session end
//   void restart_session(State&, Philox&) const                    with reset_on_switch: the new session's state
//                                                                  drawn from nu_0
//   void observe(const State&, float* obs) const, void latent(const State&, float* out) const
//   const SessionParams& session() const
// (the key comes from the batch's rows, not from E: one E serves every run of a seed batch).
template <class E>
DYN_HD void env_step(const E& e, typename E::State& s, int32_t a_index, const float* a_value, EnvKey key, uint32_t step,
                     const StepRow& out) {
  const float r = e.act(s, a_index, a_value);
  const SessionTick tick = session_advance(e.session(), s.ss, key.seed, key.env, step);
  if (out.final_obs) e.observe(s, out.final_obs);  // where the action led, before any reset
  if (tick.truncated)
    e.reset(s, key, step + 1);
  else if (tick.session_end) {
    e.switch_session(s, key, step);
    if (e.session().reset_on_switch) {  // SPEC §1: the new session starts from a state drawn from nu_0
      Philox rng(key.seed, kStreamSessionReset, key.env, step);
      e.restart_session(s, rng);
    }
  }
  e.observe(s, out.obs);
  if (out.latent) e.latent(s, out.latent);
  *out.reward = r;
  *out.session_end = tick.session_end;
  *out.truncated = tick.truncated;
  *out.terminated = 0;  // no env here ends an episode before its time limit
  *out.session_id = tick.session_id;
}

// What the config says about an env: its name, the session process, the seed, and its own keys (env.* keys other
// than the session's, as written: each env reads the ones it knows).
struct EnvConfig {
  std::string name;
  SessionParams session;
  uint32_t seed = 0;
  uint32_t first_env = 0;  // the global index of the batch's row 0 (a data-parallel rank's share starts there)
  std::map<std::string, std::string> options;  // e.g. {"goal_stay_prob", "0.2"}, {"wind_mode", "drift"}
  double option(const std::string& key, double fallback) const;
  std::string option(const std::string& key, const std::string& fallback) const;
};

// N envs of one kind on one backend; the state lives in the object. A seed batch's envs (make_batch_env with seeds)
// are S runs of N / S envs side by side, run r's at rows [r·N/S, (r+1)·N/S): each call is still one launch over all.
class BatchEnv {
 public:
  virtual ~BatchEnv() = default;
  const EnvSpec& spec() const { return spec_; }
  Backend backend() const { return b_; }
  int64_t size() const { return n_; }      // every run's envs
  uint32_t seed() const { return seed_; }  // run 0's
  // The global index of row 0: row i is env first_env() + i, whose Philox streams (reset, session process,
  // scripted actions, and the policy's samples) are keyed by that index (make_batch_env sets it from the config).
  uint32_t first_env() const { return first_env_; }
  void set_first_env(uint32_t first) { first_env_ = first; }
  // A seed batch: the rows become seeds.size() runs of size() / seeds.size() envs, run r's seeded with seeds[r] and
  // indexed from first_env() as that run alone (throws std::invalid_argument unless the rows split evenly and seeds[0]
  // is the env's own seed).
  void set_runs(const std::vector<uint32_t>& seeds);
  int runs() const { return runs_; }
  int64_t run_size() const { return n_ / runs_; }
  // Which env and seed each row is (the rows of the kernels).
  BatchRows rows() const { return {seed_, first_env_, runs_ > 1 ? run_seeds_.data() : nullptr, n_ / runs_}; }

  // Every env starts an episode at global step 0: its first observation into obs [N, obs], and the latent of its
  // first session into latent [N, latent] unless nullptr.
  virtual void reset(float* obs, float* latent) = 0;
  // Steps every env at global step `step` (read through the StepRef, so a graph replay steps on).
  virtual void step(const ActionBatch& actions, const StepBatch& out, StepRef step) = 0;
  // Scripted actions for global step `step`: random, or the env's oracle (spec().has_oracle).
  virtual void scripted(bool oracle, const ActionBuffers& out, uint32_t step) = 0;
  // Run `run`'s envs' states (checkpoints; one run: run 0, every env), as that run alone has them.
  virtual void visit_state(StateVisitor& v, int run) = 0;

 protected:
  BatchEnv(Backend b, EnvSpec spec, int64_t n, uint32_t seed)
      : b_(b), spec_(std::move(spec)), n_(n), seed_(seed), run_seeds_(b, 0) {}
  Backend b_;
  EnvSpec spec_;
  int64_t n_;
  uint32_t seed_;
  uint32_t first_env_ = 0;
  int runs_ = 1;
  Buffer<uint32_t> run_seeds_;  // [S] a seed batch's seeds (empty: one run)
};

// The registry: every env by name (sim/env.cpp).
using EnvFactory = std::unique_ptr<BatchEnv> (*)(Backend, const EnvConfig&, int64_t n);
const std::vector<std::pair<std::string, EnvFactory>>& env_registry();
// N envs named by cfg.name; throws std::invalid_argument naming the known envs. With seeds (more than one): a seed
// batch of seeds.size() runs of N envs each, run r's as cfg with seed seeds[r] makes them.
std::unique_ptr<BatchEnv> make_batch_env(Backend b, const EnvConfig& cfg, int64_t n,
                                         const std::vector<uint32_t>& seeds = {});
// An env's config with SPEC §2's session process (gridworld: H 60, K 4, the agent back at the start at each new
// session; the physics envs: H 400, K 4, the body keeps its state), the given seed and no options (tests, benchmarks;
// the command line reads configs/<env>.toml).
EnvConfig default_env_config(const std::string& name, uint32_t seed = 0);

// Scripted rollouts' random and oracle choice (CLI `--policy`).
enum class ScriptedPolicy { random, oracle };

}  // namespace dyn
