// Scripted-policy rollouts (gridworld and the physics envs) with per-env episode statistics kept on the backend;
// the host reads back only the per-env sums at the end.
#include "algo/scripted_rollout.h"

#include <chrono>
#include <cmath>

#include "kernels/buffer.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

// Per-env running sums over finished episodes.
struct EpisodeSums {
  double ret, ret_sq, sessions, episodes;
};

// After a step: adds the reward to each env's running return, and a finished episode to its sums.
struct AccumulateEpisodes {
  const float* r;
  const uint8_t* done;
  const int32_t* sid;
  float* ret;
  EpisodeSums* acc;
  DYN_HD void operator()(int64_t i) const {
    const float g = ret[i] + r[i];
    if (done[i]) {
      acc[i].ret += g;
      acc[i].ret_sq += double(g) * g;
      acc[i].sessions += sid[i] + 1;
      acc[i].episodes += 1;
      ret[i] = 0.0f;
    } else {
      ret[i] = g;
    }
  }
};

// The stepping loop shared by every env: `step(t)` runs the policy and one env step writing reward [N], truncated
// [N] and session_id [N]; the per-env episode sums stay on the backend and are read once at the end.
template <class StepFn>
RolloutSummary rollout_loop(Backend b, int64_t n, int64_t steps, const float* r, const uint8_t* done,
                            const int32_t* sid, StepFn step) {
  Buffer<float> ep_return(b, n);   // [N] return of the running episode
  Buffer<EpisodeSums> sums(b, n);  // [N]
  ep_return.zero();
  sums.zero();
  float* ret = ep_return.data();
  EpisodeSums* acc = sums.data();
  synchronize(b);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < steps; ++t) {
    step(uint32_t(t));
    parallel_for(b, n, AccumulateEpisodes{r, done, sid, ret, acc});
  }
  synchronize(b);
  const auto t1 = std::chrono::steady_clock::now();

  // reduce the per-env sums on the host (N small records, read once)
  EpisodeSums total{0, 0, 0, 0};
  for (const EpisodeSums& s : sums.to_host()) {
    total.ret += s.ret;
    total.ret_sq += s.ret_sq;
    total.sessions += s.sessions;
    total.episodes += s.episodes;
  }
  RolloutSummary out_summary;
  out_summary.episodes = int64_t(total.episodes);
  out_summary.env_steps = steps * n;
  out_summary.seconds = std::chrono::duration<double>(t1 - t0).count();
  if (total.episodes > 0) {
    const double m = total.ret / total.episodes;
    const double var = total.episodes > 1 ? (total.ret_sq - total.episodes * m * m) / (total.episodes - 1) : 0.0;
    out_summary.mean_return = m;
    out_summary.return_std = std::sqrt(var > 0 ? var : 0);
    out_summary.return_ci95 = 1.96 * out_summary.return_std / std::sqrt(total.episodes);
    out_summary.mean_sessions = total.sessions / total.episodes;
  }
  return out_summary;
}

}  // namespace

RolloutSummary run_scripted_rollout(Backend b, const GridParams& p, ScriptedPolicy policy, int64_t n_envs,
                                    int64_t episodes_per_env) {
  DYN_NVTX_RANGE("scripted_rollout");
  const int64_t n = n_envs;
  Buffer<GridState> state(b, n);                                         // [N]
  Buffer<int32_t> actions(b, n);                                         // [N]
  Buffer<float> obs(b, n * kGridObsDim);                                 // [N, 6]
  Buffer<float> reward(b, n);                                            // [N]
  Buffer<uint8_t> session_end(b, n), truncated(b, n), terminated(b, n);  // [N]
  Buffer<int32_t> session_id(b, n);                                      // [N]
  gridworld_reset(b, p, state.data(), obs.data(), n, 0);
  const GridBatchOut out{obs.data(),        reward.data(), session_end.data(), truncated.data(), terminated.data(),
                         session_id.data(), nullptr};
  return rollout_loop(b, n, episodes_per_env * p.session.horizon, reward.data(), truncated.data(), session_id.data(),
                      [&](uint32_t step) {
                        gridworld_policy(b, policy, p, state.data(), actions.data(), n, step);
                        gridworld_step(b, p, state.data(), actions.data(), out, n, step);
                      });
}

RolloutSummary run_scripted_rollout(Backend b, const PhysicsEnvParams& p, ScriptedPolicy policy, int64_t n_envs,
                                    int64_t episodes_per_env) {
  DYN_NVTX_RANGE("scripted_rollout");
  const int64_t n = n_envs;
  const int od = physics_obs_dim(p.task), ad = physics_action_dim(p.task);
  Buffer<PhysicsEnvState> state(b, n);                                   // [N]
  Buffer<float> actions(b, n * ad);                                      // [N, A]
  Buffer<float> obs(b, n * od);                                          // [N, obs]
  Buffer<float> reward(b, n);                                            // [N]
  Buffer<uint8_t> session_end(b, n), truncated(b, n), terminated(b, n);  // [N]
  Buffer<int32_t> session_id(b, n);                                      // [N]
  const PhysicsEnvBatch envs(b, p);
  envs.reset(state.data(), obs.data(), n, 0);
  const PhysicsBatchOut out{obs.data(),        reward.data(), session_end.data(), truncated.data(), terminated.data(),
                            session_id.data(), nullptr};
  const bool oracle = policy == ScriptedPolicy::oracle;
  return rollout_loop(b, n, episodes_per_env * p.session.horizon, reward.data(), truncated.data(), session_id.data(),
                      [&](uint32_t step) {
                        envs.policy(oracle, state.data(), actions.data(), n, step);
                        envs.step(state.data(), actions.data(), out, n, step);
                      });
}

}  // namespace dyn
