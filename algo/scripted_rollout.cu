// Scripted-policy rollouts on any env with per-env episode statistics kept on the backend; the host reads back only
// the per-env sums at the end.
#include "algo/episode_stats.h"
#include "algo/scripted_rollout.h"

#include <chrono>
#include <cmath>

#include "kernels/buffer.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

// The stepping loop: `step(t)` runs the policy and one env step writing reward [N], truncated [N] and session_id
// [N]; the per-env episode sums stay on the backend and are read once at the end.
template <class StepFn>
RolloutSummary rollout_loop(Backend b, int64_t n, int64_t steps, const float* r, const uint8_t* done,
                            const int32_t* sid, StepFn step) {
  EpisodeStats episodes(b, n);
  synchronize(b);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < steps; ++t) {
    step(uint32_t(t));
    episodes.after_step(r, done, nullptr, sid);
  }
  synchronize(b);
  const auto t1 = std::chrono::steady_clock::now();
  const EvalStats e = episodes.summary();
  RolloutSummary out;
  out.episodes = e.episodes;
  out.env_steps = steps * n;
  out.seconds = std::chrono::duration<double>(t1 - t0).count();
  if (e.episodes > 0) {
    out.mean_return = e.mean_return;
    out.return_std = e.std;
    out.return_ci95 = e.ci95;
    out.mean_sessions = e.mean_sessions;
  }
  return out;
}

}  // namespace

RolloutSummary run_scripted_rollout(BatchEnv& env, ScriptedPolicy policy, int64_t episodes_per_env) {
  DYN_NVTX_RANGE("scripted_rollout");
  const Backend b = env.backend();
  const EnvSpec& spec = env.spec();
  const int64_t n = env.size();
  Buffer<int32_t> index(b, spec.discrete() ? n : 0);                     // [N] discrete actions
  Buffer<float> value(b, spec.discrete() ? 0 : n * spec.action_dim);     // [N, A] continuous actions
  Buffer<float> obs(b, n * spec.obs_dim);                                // [N, obs]
  Buffer<float> reward(b, n);                                            // [N]
  Buffer<uint8_t> session_end(b, n), truncated(b, n), terminated(b, n);  // [N]
  Buffer<int32_t> session_id(b, n);                                      // [N]
  env.reset(obs.data(), nullptr);
  const StepBatch out = StepBatch::of(obs.data(), reward.data(), terminated.data(), truncated.data(),
                                      session_end.data(), session_id.data());
  const ActionBuffers actions{index.data(), value.data()};
  const bool oracle = policy == ScriptedPolicy::oracle;
  return rollout_loop(b, n, episodes_per_env * spec.horizon, reward.data(), truncated.data(), session_id.data(),
                      [&](uint32_t step) {
                        env.scripted(oracle, actions, step);
                        env.step(actions.batch(), out, step);
                      });
}

RolloutSummary run_scripted_rollout(Backend b, const EnvConfig& cfg, ScriptedPolicy policy, int64_t n_envs,
                                    int64_t episodes_per_env) {
  const std::unique_ptr<BatchEnv> env = make_batch_env(b, cfg, n_envs);
  return run_scripted_rollout(*env, policy, episodes_per_env);
}

}  // namespace dyn
