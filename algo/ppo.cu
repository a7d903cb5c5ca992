// PPO on any env: the env and the input normalisation around PpoCore; collect is captured as a CUDA Graph.
#include "algo/evaluate.h"
#include "algo/ppo.h"
#include "kernels/copy.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

// [obs (O) | latent (L)] per row.
struct ConcatInput {
  int O, L;
  const float *obs, *latent;
  float* raw;
  DYN_HD void operator()(int64_t i) const {
    for (int k = 0; k < O; ++k) raw[i * (O + L) + k] = obs[i * O + k];
    for (int k = 0; k < L; ++k) raw[i * (O + L) + O + k] = latent[i * L + k];
  }
};

// The observation columns of raw [n, D] ← obs [n, O] (the rest, the latent, stays).
struct PlaceObs {
  int O, D;
  const float* obs;
  float* raw;
  DYN_HD void operator()(int64_t k) const { raw[(k / O) * D + k % O] = obs[k]; }
};

}  // namespace

// Evaluation of run `run`: normalise with its training statistics, take the mode of its policy.
class PpoLearner::Agent : public EvalAgent {
 public:
  Agent(PpoLearner& l, int64_t n, int run)
      : l_(l), n_(n), run_(run), raw_(l.b_, size_t(n) * l.raw_dim()), in_(l.b_, size_t(n) * l.raw_dim()) {}
  void begin(BatchEnv&) override {}
  void act(const float* obs, const float* latent, const ActionBuffers& out, uint32_t) override {
    l_.raw_input(obs, latent, n_, raw_.data());
    l_.in_norms_[run_].normalize(raw_.data(), in_.data(), n_);
    PolicyStep s = PolicyStep::mode(in_.data(), n_, out);
    s.run = run_;
    l_.core_->policy_step(ws_, s);
  }
  void after_step(const ActionBatch&, const StepBatch&) override {}

 private:
  PpoLearner& l_;
  int64_t n_;
  int run_;
  Buffer<float> raw_, in_;  // [n, raw]
  PolicyWorkspace ws_;
};

PpoLearner::PpoLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg, bool with_latent,
                       const std::vector<uint32_t>& seeds)
    : RolloutLearner(b, env, n_envs, cfg, seeds),
      with_latent_(with_latent),
      latent_(b, seeds_.size() * n_envs * spec().latent_dim),
      in_norms_(b, raw_dim(), runs()),
      raw_(b, seeds_.size() * n_envs * raw_dim()) {
  core_ = std::make_unique<PpoCore>(b, spec(), PolicyShape{raw_dim()}, n_envs, cfg, seeds_, env.first_env);
  reset_envs(latent_.data());
}

PpoLearner::~PpoLearner() = default;

void PpoLearner::raw_input(const float* obs, const float* latent, int64_t n, float* raw) const {
  const EnvSpec& s = env_->spec();
  parallel_for(b_, n, ConcatInput{s.obs_dim, with_latent_ ? s.latent_dim : 0, obs, latent, raw});
}

void PpoLearner::collect_steps() {
  const int T = cfg_.rollout_steps, R = runs(), D = raw_dim();
  const int64_t n = n_, rows = n * R;
  core_->begin_rollout();
  for (int t = 0; t < T; ++t) {
    // the policy's input: [s (, latent)] normalised with statistics that include this step
    raw_input(obs_.data(), latent_.data(), rows, raw_.data());
    in_norms_.update(raw_.data(), n);
    in_norms_.normalize(raw_.data(), core_->input(t), n);
    const PolicyStep ps = rollout_policy_step(t);
    core_->policy_step(roll_ws_, ps);
    step_envs(t, ps, latent_.data());
    // time limit: bootstrap from V(final observation), with the latent the step was taken in (still in raw_)
    if (clock_.truncates_after(t)) {
      const int O = spec().obs_dim;
      parallel_for(b_, rows * O, PlaceObs{O, D, final_obs_.data(), raw_.data()});
      in_norms_.normalize(raw_.data(), raw_.data(), n);
      PolicyStep v = PolicyStep::value_of(raw_.data(), rows, core_->final_value(t));
      v.runs = R;
      core_->policy_step(roll_ws_, v);
    }
    core_->track_step(t, sid_.data());
  }
  advance_counter(b_, step_dev_.data(), uint32_t(T));
  // V(s_T) for the observation after the last step
  raw_input(obs_.data(), latent_.data(), rows, raw_.data());
  in_norms_.normalize(raw_.data(), raw_.data(), n);
  PolicyStep v = PolicyStep::value_of(raw_.data(), rows, core_->value(T));
  v.runs = R;
  core_->policy_step(roll_ws_, v);
  core_->finish_rollout();
}

std::unique_ptr<EvalAgent> PpoLearner::run_eval_agent(int64_t n, int run) {
  return std::make_unique<Agent>(*this, n, run);
}

void PpoLearner::visit_run_state(StateVisitor& v, int run) {
  RolloutLearner::visit_run_state(v, run);
  const int64_t L = spec().latent_dim;
  if (L > 0) v.array("latent", DType::f32, {n_ * L}, latent_.data() + run * n_ * L, b_);
  v.part("input_norm", in_norms_[run]);
}

}  // namespace dyn
