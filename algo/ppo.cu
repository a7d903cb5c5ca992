// PPO on the gridworld: the env and the state normalisation around PpoCore; collect is captured as a CUDA Graph.
#include "algo/ppo.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

GridPpo::GridPpo(Backend b, const GridParams& env, int64_t n_envs, const PpoConfig& cfg)
    : b_(b),
      env_(env),
      n_(n_envs),
      cfg_(cfg),
      core_(b, kGridObsDim, kGridActions, n_envs, cfg, env.seed),
      obs_norm_(b, kGridObsDim),
      graphs_(b, cfg.cuda_graphs),
      step_dev_(b, 1),
      state_(b, n_),
      obs_(b, n_ * kGridObsDim),
      final_obs_(b, n_ * kGridObsDim),
      send_(b, n_),
      sid_(b, n_) {
  step_dev_.zero();
  gridworld_reset(b_, env_, state_.data(), obs_.data(), n_, 0);
}

void GridPpo::collect(IterationStats& st) {
  DYN_NVTX_RANGE("ppo_collect");
  graphs_.run(step_ % uint32_t(env_.session.horizon), [&] { collect_steps(); });
  step_ += uint32_t(cfg_.rollout_steps);
  frames_ += int64_t(cfg_.rollout_steps) * n_;
  st.train_return = core_.rollout_return(&st.episodes);
}

void GridPpo::collect_steps() {
  const int T = cfg_.rollout_steps;
  const int64_t n = n_;
  const uint32_t step0 = step_;  // host mirror: only its phase within the horizon shapes what is queued
  core_.begin_rollout();
  for (int t = 0; t < T; ++t) {
    const StepRef step(step_dev_.data(), uint32_t(t));
    float* o = core_.input(t);
    obs_norm_.update(obs_.data(), n);
    obs_norm_.normalize(obs_.data(), o, n);
    int32_t* a = core_.action(t);
    core_.act(roll_ws_, o, n, false, env_.seed, step, a, core_.log_prob(t), core_.value(t));
    const GridBatchOut out{obs_.data(),         core_.reward(t), send_.data(),     core_.truncated(t),
                           core_.terminated(t), sid_.data(),     final_obs_.data()};
    gridworld_step(b_, env_, state_.data(), a, out, n, step);
    // time limit: bootstrap from V(final observation). All envs start together and share H, so truncations
    // happen exactly every H global steps.
    if ((step0 + uint32_t(t) + 1) % uint32_t(env_.session.horizon) == 0) {
      float* fo = final_obs_.data();
      obs_norm_.normalize(fo, fo, n);
      core_.values(roll_ws_, fo, n, core_.final_value(t));
    }
    core_.track_step(t);
  }
  uint32_t* counter = step_dev_.data();
  parallel_for(b_, 1, [=] DYN_LAMBDA(int64_t) { *counter += uint32_t(T); });
  // V(s_T) for the observation after the last step
  float* tmp = final_obs_.data();  // scratch for the normalised last observation
  obs_norm_.normalize(obs_.data(), tmp, n);
  core_.values(roll_ws_, tmp, n, core_.value(T));
  core_.finish_rollout();
}

IterationStats GridPpo::iterate() { return timed_iteration(*this); }

EvalStats GridPpo::evaluate(int64_t n, int episodes_per_env, uint32_t seed) {
  DYN_NVTX_RANGE("ppo_evaluate");
  GridParams p = env_;
  p.seed = seed;
  Buffer<GridState> state(b_, n);
  Buffer<float> obs(b_, n * kGridObsDim), norm(b_, n * kGridObsDim), reward(b_, n), ep(b_, n);
  Buffer<uint8_t> send(b_, n), trunc(b_, n), term(b_, n);
  Buffer<int32_t> sid(b_, n), act(b_, n);
  Buffer<double> sums(b_, 3 * n);
  ep.zero();
  sums.zero();
  HeadWorkspaces ws;
  gridworld_reset(b_, p, state.data(), obs.data(), n, 0);
  const GridBatchOut out{obs.data(), reward.data(), send.data(), trunc.data(), term.data(), sid.data(), nullptr};
  const int64_t steps = int64_t(episodes_per_env) * p.session.horizon;
  for (int64_t t = 0; t < steps; ++t) {
    obs_norm_.normalize(obs.data(), norm.data(), n);
    core_.act(ws, norm.data(), n, true, seed, uint32_t(t), act.data(), nullptr, nullptr);
    gridworld_step(b_, p, state.data(), act.data(), out, n, uint32_t(t));
    track_eval_returns(b_, n, reward.data(), trunc.data(), ep.data(), sums.data());
  }
  return eval_stats(sums, n);
}

}  // namespace dyn
