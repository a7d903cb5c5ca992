// The evaluation loop: reset, then per step act → env step → statistics → the agent's after_step.
#include "algo/evaluate.h"
#include "kernels/buffer.h"
#include "kernels/nvtx.h"

namespace dyn {

EvalStats run_evaluation(BatchEnv& env, int episodes_per_env, EvalAgent& agent) {
  DYN_NVTX_RANGE("evaluate");
  const Backend b = env.backend();
  const EnvSpec& spec = env.spec();
  const int64_t n = env.size();
  Buffer<float> obs(b, n * spec.obs_dim), latent(b, n * spec.latent_dim), reward(b, n);  // [N, ·]
  Buffer<uint8_t> session_end(b, n), truncated(b, n), terminated(b, n);                  // [N]
  Buffer<int32_t> session_id(b, n), index(b, spec.discrete() ? n : 0);                   // [N]
  Buffer<float> value(b, spec.discrete() ? 0 : n * spec.action_dim);                     // [N, A]
  EpisodeStats stats(b, n);
  env.reset(obs.data(), latent.data());
  agent.begin(env);
  const StepBatch out = StepBatch::of(obs.data(), reward.data(), terminated.data(), truncated.data(),
                                      session_end.data(), session_id.data(), nullptr, latent.data());
  const ActionBuffers actions{index.data(), value.data()};
  const int64_t steps = int64_t(episodes_per_env) * spec.horizon;
  for (int64_t t = 0; t < steps; ++t) {
    agent.act(obs.data(), latent.data(), actions, uint32_t(t));
    env.step(actions.batch(), out, uint32_t(t));
    stats.after_step(reward.data(), truncated.data(), terminated.data(), session_id.data());
    agent.after_step(actions.batch(), out);
  }
  return stats.summary();
}

}  // namespace dyn
