// RolloutLearner: the collect's graph and bookkeeping, and the step-t views of the core's storage.
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

#include "algo/rollout_learner.h"
#include "kernels/collective.h"
#include "kernels/nvtx.h"

namespace dyn {

RolloutLearner::RolloutLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg,
                               const std::vector<uint32_t>& seeds)
    : b_(b),
      env_cfg_(env),
      seeds_(seeds.empty() ? std::vector<uint32_t>{env.seed} : seeds),
      env_(make_batch_env(b, env, n_envs, seeds_)),
      n_(n_envs),
      cfg_(cfg),
      clock_{env_->spec().horizon, 0},
      graphs_(b, cfg.cuda_graphs),
      step_dev_(b, 1),
      obs_(b, seeds_.size() * n_envs * env_->spec().obs_dim),
      final_obs_(b, seeds_.size() * n_envs * env_->spec().obs_dim),
      send_(b, seeds_.size() * n_envs),
      sid_(b, seeds_.size() * n_envs) {
  if (seeds_[0] != env.seed)
    throw std::invalid_argument("RolloutLearner: a seed batch's first seed must be the env config's");
  step_dev_.zero();
}

RolloutLearner::~RolloutLearner() = default;

IterationStats RolloutLearner::iterate_run(int run, int64_t iteration) {
  if (iteration == rounds_) {  // the first run to ask: the batch's next round, for every run
    using clock = std::chrono::steady_clock;
    std::vector<IterationStats> st(seeds_.size());
    const auto t0 = clock::now();
    collect(st.data());  // ends with a read of the episode statistics: the backend is idle here
    const auto t1 = clock::now();
    advantages();
    synchronize(b_);
    const auto t2 = clock::now();
    update_runs(st.data());  // ends with a read of the loss statistics
    const auto t3 = clock::now();
    for (IterationStats& s : st) {
      s.collect_s = std::chrono::duration<double>(t1 - t0).count();
      s.advantages_s = std::chrono::duration<double>(t2 - t1).count();
      s.update_s = std::chrono::duration<double>(t3 - t2).count();
      s.frames = frames_;
    }
    round_stats_ = std::move(st);
    ++rounds_;
  } else if (iteration != rounds_ - 1) {
    throw std::logic_error("RolloutLearner::iterate_run: run " + std::to_string(run) + " asked for iteration " +
                           std::to_string(iteration) + " of a batch at round " + std::to_string(rounds_) +
                           " (the runs of a seed batch iterate in lock step)");
  }
  return round_stats_[size_t(run)];
}

void RolloutLearner::collect(IterationStats* st) {
  DYN_NVTX_RANGE("collect");
  graphs_.run(clock_.phase(), [&] { collect_steps(); });
  after_collect(st);
  clock_.step += uint32_t(cfg_.rollout_steps);
  const int ranks = data_parallel_ranks();  // data parallel: every rank steps n_ of the run's envs
  frames_ += int64_t(cfg_.rollout_steps) * n_ * ranks;
  const std::vector<EvalStats> finished = core_->rollout_stats();  // the episodes that finished in this rollout
  for (int run = 0; run < runs(); ++run) {
    const EvalStats& r = finished[size_t(run)];
    st[run].train_return = r.mean_return;
    st[run].episodes = r.episodes;
    if (ranks > 1) {  // every rank's finished episodes
      double sums[2] = {r.episodes > 0 ? r.mean_return * double(r.episodes) : 0.0, double(r.episodes)};
      sum_over_ranks(Backend::cpu, sums, 2);
      st[run].episodes = int64_t(sums[1]);
      st[run].train_return = sums[1] > 0 ? sums[0] / sums[1] : std::nan("");
    }
  }
}

PolicyStep RolloutLearner::rollout_policy_step(int t) {
  PolicyStep s;
  s.in = core_->input(t);
  s.n = n_ * runs();
  s.runs = runs();
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

std::unique_ptr<EvalAgent> RolloutLearner::run_eval_agent(int64_t n, int run) {
  if (run != 0) throw std::logic_error("RolloutLearner: this learner trains one run, not a seed batch");
  return eval_agent(n);
}

EvalStats RolloutLearner::evaluate_run(int run, int64_t n, int episodes_per_env, uint32_t seed, const EvalMode& mode) {
  DYN_NVTX_RANGE("evaluate_learner");
  EnvConfig cfg = env_cfg_;
  cfg.seed = seed;
  cfg.first_env = 0;  // the evaluation's own envs, whatever share of the training envs this process steps
  const std::unique_ptr<BatchEnv> env = make_batch_env(b_, cfg, n);
  const std::unique_ptr<EvalAgent> agent = run_eval_agent(n, run);
  return run_evaluation(*env, episodes_per_env, *agent, mode);
}

void RolloutLearner::visit_run_state(StateVisitor& v, int run) {
  const int64_t o = int64_t(run) * n_, O = spec().obs_dim;
  v.part("env", *env_, run);
  v.array("obs", DType::f32, {n_ * O}, obs_.data() + o * O, b_);
  v.array("final_obs", DType::f32, {n_ * O}, final_obs_.data() + o * O, b_);
  v.array("session_end", DType::u8, {n_}, send_.data() + o, b_);
  v.array("session_id", DType::i32, {n_}, sid_.data() + o, b_);
  v.buffer("step", step_dev_);
  v.value("clock_step", clock_.step);
  v.value("frames", frames_);
  v.part("ppo", *core_, run);
}

}  // namespace dyn
