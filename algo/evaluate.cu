// The evaluation loop: reset, then per step act → env step → statistics → the agent's after_step; per-episode
// summaries at each episode end (no env ends an episode before its horizon, so episode k is steps [kH, (k+1)H)).
#include "algo/evaluate.h"
#include "kernels/buffer.h"
#include "kernels/nvtx.h"

namespace dyn {

EvalStats run_evaluation(BatchEnv& env, int episodes_per_env, EvalAgent& agent, const EvalMode& mode) {
  DYN_NVTX_RANGE("evaluate");
  const Backend b = env.backend();
  const EnvSpec& spec = env.spec();
  const int64_t n = env.size();
  Buffer<float> obs(b, n * spec.obs_dim), latent(b, n * spec.latent_dim), reward(b, n);  // [N, ·]
  Buffer<uint8_t> session_end(b, n), truncated(b, n), terminated(b, n);                  // [N]
  Buffer<uint8_t> no_end(b, mode.carry_across_episodes ? n : 0);                         // [N] zeros
  Buffer<int32_t> session_id(b, n), index(b, spec.discrete() ? n : 0);                   // [N]
  Buffer<float> value(b, spec.discrete() ? 0 : n * spec.action_dim);                     // [N, A]
  EpisodeStats all(b, n), this_episode(b, n);
  no_end.zero();
  env.reset(obs.data(), latent.data());
  agent.begin(env);
  const StepBatch out = StepBatch::of(obs.data(), reward.data(), terminated.data(), truncated.data(),
                                      session_end.data(), session_id.data(), nullptr, latent.data());
  // what the agent is shown: the episode ends hidden when its state is carried across them
  StepBatch seen = out;
  if (mode.carry_across_episodes) seen.truncated = seen.terminated = no_end.data();
  const ActionBuffers actions{index.data(), value.data()};
  std::vector<EvalStats> per_episode;
  for (int episode = 0; episode < episodes_per_env; ++episode)
    for (int t = 0; t < spec.horizon; ++t) {
      const uint32_t step = uint32_t(int64_t(episode) * spec.horizon + t);
      agent.act(obs.data(), latent.data(), actions, step);
      if (mode.observer)
        mode.observer->acted(spec, episode, t, obs.data(), latent.data(), actions.batch(), agent.columns());
      env.step(actions.batch(), out, step);
      if (mode.observer) mode.observer->stepped(spec, out);
      all.after_step(reward.data(), truncated.data(), terminated.data(), session_id.data());
      this_episode.after_step(reward.data(), truncated.data(), terminated.data(), session_id.data());
      agent.after_step(actions.batch(), seen);
      if (t + 1 == spec.horizon) {
        per_episode.push_back(this_episode.summary());
        this_episode.clear();
      }
    }
  EvalStats stats = all.summary();
  stats.per_episode = std::move(per_episode);
  agent.add_figures(stats);
  return stats;
}

}  // namespace dyn
