// RolloutLearner: the collect's graph and bookkeeping, and the step-t views of the core's storage.
#include <chrono>
#include <cmath>

#include "algo/rollout_learner.h"
#include "kernels/collective.h"
#include "kernels/nvtx.h"

namespace dyn {

RolloutLearner::RolloutLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg)
    : b_(b),
      env_cfg_(env),
      env_(make_batch_env(b, env, n_envs)),
      n_(n_envs),
      cfg_(cfg),
      clock_{env_->spec().horizon, 0},
      graphs_(b, cfg.cuda_graphs),
      step_dev_(b, 1),
      obs_(b, size_t(n_envs) * env_->spec().obs_dim),
      final_obs_(b, size_t(n_envs) * env_->spec().obs_dim),
      send_(b, size_t(n_envs)),
      sid_(b, size_t(n_envs)) {
  step_dev_.zero();
}

RolloutLearner::~RolloutLearner() = default;

IterationStats RolloutLearner::iterate() {
  using clock = std::chrono::steady_clock;
  IterationStats st;
  const auto t0 = clock::now();
  collect(st);  // ends with a read of the episode statistics: the backend is idle here
  const auto t1 = clock::now();
  advantages();
  synchronize(b_);
  const auto t2 = clock::now();
  update(st);  // ends with a read of the loss statistics
  const auto t3 = clock::now();
  st.collect_s = std::chrono::duration<double>(t1 - t0).count();
  st.advantages_s = std::chrono::duration<double>(t2 - t1).count();
  st.update_s = std::chrono::duration<double>(t3 - t2).count();
  st.frames = frames_;
  return st;
}

void RolloutLearner::collect(IterationStats& st) {
  DYN_NVTX_RANGE("collect");
  graphs_.run(clock_.phase(), [&] { collect_steps(); });
  after_collect(st);
  clock_.step += uint32_t(cfg_.rollout_steps);
  const int ranks = data_parallel_ranks();  // data parallel: every rank steps n_ of the run's envs
  frames_ += int64_t(cfg_.rollout_steps) * n_ * ranks;
  const EvalStats r = core_->rollout_stats();  // the episodes that finished in this rollout
  st.train_return = r.mean_return;
  st.episodes = r.episodes;
  if (ranks > 1) {  // every rank's finished episodes
    double sums[2] = {r.episodes > 0 ? r.mean_return * double(r.episodes) : 0.0, double(r.episodes)};
    sum_over_ranks(Backend::cpu, sums, 2);
    st.episodes = int64_t(sums[1]);
    st.train_return = sums[1] > 0 ? sums[0] / sums[1] : std::nan("");
  }
}

PolicyStep RolloutLearner::rollout_policy_step(int t) {
  PolicyStep s;
  s.in = core_->input(t);
  s.n = n_;
  s.seed = env_->seed();
  s.step = StepRef(step_dev_.data(), uint32_t(t));
  s.first_env = env_->first_env();
  s.actions = core_->action(t);
  s.logp = core_->log_prob(t);
  s.values = core_->value(t);
  return s;
}

StepBatch RolloutLearner::step_outputs(int t, float* latent) {
  return StepBatch::of(obs_.data(), core_->reward(t), core_->terminated(t), core_->truncated(t), send_.data(),
                       sid_.data(), final_obs_.data(), latent);
}

EvalStats RolloutLearner::evaluate(int64_t n, int episodes_per_env, uint32_t seed, const EvalMode& mode) {
  DYN_NVTX_RANGE("evaluate_learner");
  EnvConfig cfg = env_cfg_;
  cfg.seed = seed;
  cfg.first_env = 0;  // the evaluation's own envs, whatever share of the training envs this process steps
  const std::unique_ptr<BatchEnv> env = make_batch_env(b_, cfg, n);
  const std::unique_ptr<EvalAgent> agent = eval_agent(n);
  return run_evaluation(*env, episodes_per_env, *agent, mode);
}

void RolloutLearner::visit_state(StateVisitor& v) {
  v.part("env", *env_);
  v.buffer("obs", obs_);
  v.buffer("final_obs", final_obs_);
  v.buffer("session_end", send_);
  v.buffer("session_id", sid_);
  v.buffer("step", step_dev_);
  v.value("clock_step", clock_.step);
  v.value("frames", frames_);
  v.part("ppo", *core_);
}

}  // namespace dyn
