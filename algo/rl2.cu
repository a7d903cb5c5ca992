// RL² on any env: the recurrent collect around PpoCore's recurrent policy and AgentCarry.
#include "algo/evaluate.h"
#include "algo/rl2.h"
#include "kernels/copy.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

// x = [s (O), a_{t−1} features (A), r_{t−1}] per row; the features are written by AgentCarry, s and r here.
struct ObsAndReward {
  int O, A;
  const float *s, *prev_r;
  const uint8_t* start;  // nullptr: not an episode start
  float* x;
  DYN_HD void operator()(int64_t i) const {
    const int D = O + A + 1;
    for (int k = 0; k < O; ++k) x[i * D + k] = s[i * O + k];
    x[i * D + O + A] = (start && start[i]) ? 0.0f : prev_r[i];
  }
};

}  // namespace

// Evaluation of run `run`: the recurrent state carried online, the mode of each step's distribution.
class Rl2Learner::Agent : public EvalAgent {
 public:
  Agent(Rl2Learner& l, const EnvSpec& spec, int64_t n, int run)
      : l_(l),
        n_(n),
        run_(run),
        carry_(l.b_, spec, n, l.shape_.hidden, 0),
        obs_(l.b_, size_t(n) * spec.obs_dim),
        x_(l.b_, size_t(n) * l.in_dim()) {}
  void begin(BatchEnv&) override { carry_.reset(); }
  void act(const float* obs, const float*, const ActionBuffers& out, uint32_t) override {
    l_.step_input(carry_, obs, n_, run_, 1, false, obs_.data(), x_.data());
    PolicyStep s = PolicyStep::mode(x_.data(), n_, out);
    s.run = run_;
    s.start = carry_.start();
    s.h = carry_.hidden();
    s.h_out = carry_.hidden();
    l_.core_->policy_step(ws_, s);
  }
  void after_step(const ActionBatch& a, const StepBatch& out) override {
    carry_.after_step(a, out.reward, out.truncated, out.terminated);
  }
  // the recurrent state h_t after act()
  std::vector<AgentColumns> columns() const override {
    const int H = l_.shape_.hidden;
    return {{"hidden", carry_.hidden(), H, 0, H}};
  }

 private:
  Rl2Learner& l_;
  int64_t n_;
  int run_;
  AgentCarry carry_;
  Buffer<float> obs_, x_;
  PolicyWorkspace ws_;
};

Rl2Learner::Rl2Learner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg, Rl2Shape shape,
                       const std::vector<uint32_t>& seeds)
    : RolloutLearner(b, env, n_envs, cfg, seeds),
      shape_(shape),
      obs_norms_(b, spec().obs_dim, runs()),
      carry_(b, spec(), runs() * n_envs, shape.hidden, 0, runs()),
      obs_norm_buf_(b, runs() * n_envs * spec().obs_dim),
      x_extra_(b, runs() * n_envs * in_dim()),
      h_next_(b, runs() * n_envs * shape.hidden) {
  core_ = std::make_unique<PpoCore>(b, spec(), PolicyShape{in_dim(), true, shape.embed, shape.hidden}, n_envs, cfg,
                                    seeds_, env.first_env);
  reset_envs();
}

Rl2Learner::~Rl2Learner() = default;

void Rl2Learner::step_input(const AgentCarry& carry, const float* obs, int64_t n, int run0, int R, bool ignore_start,
                            float* obs_scratch, float* x) const {
  const EnvSpec& s = env_->spec();
  obs_norms_.normalize(obs, obs_scratch, n, run0, R);
  parallel_for(b_, R * n,
               ObsAndReward{s.obs_dim, s.action_dim, obs_scratch, carry.prev_reward(),
                            ignore_start ? nullptr : carry.start(), x});
  carry.action_features(x, in_dim(), s.obs_dim, ignore_start);
}

void Rl2Learner::collect_steps() {
  const int T = cfg_.rollout_steps, R = runs();
  const int64_t n = n_, rows = R * n_, H = shape_.hidden, O = spec().obs_dim;
  core_->begin_rollout();
  copy_values(b_, carry_.hidden(), core_->h0(), rows * H);  // the chunk's starting state, for BPTT
  for (int t = 0; t < T; ++t) {
    copy_values(b_, carry_.start(), core_->restart(t), rows);
    obs_norms_.update(obs_.data(), n);
    step_input(carry_, obs_.data(), n, 0, R, false, obs_norm_buf_.data(), core_->input(t));
    // one recurrent step; the new state replaces the carried one in place
    PolicyStep ps = rollout_policy_step(t);
    ps.start = carry_.start();
    ps.h = carry_.hidden();
    ps.h_out = carry_.hidden();
    core_->policy_step(roll_ws_, ps);
    step_envs(t, ps);
    core_->track_step(t, sid_.data());
    // the next step's inputs: this action and reward, or a fresh start after an episode end
    carry_.after_step(core_->action(t).batch(), core_->reward(t), core_->truncated(t), core_->terminated(t));
    // time limit: V of the final observation, one more recurrent step from the carried state (not a start)
    if (clock_.truncates_after(t)) {
      step_input(carry_, final_obs_.data(), n, 0, R, true, obs_norm_buf_.data(), x_extra_.data());
      PolicyStep bs = PolicyStep::value_of(x_extra_.data(), rows, core_->final_value(t));
      bs.runs = R;
      bs.h = carry_.hidden();
      bs.h_out = h_next_.data();
      core_->policy_step(boot_ws_, bs);
    }
  }
  advance_counter(b_, step_dev_.data(), uint32_t(T));
  // V(s_T): a recurrent step on the next observation, without advancing the carried state
  step_input(carry_, obs_.data(), n, 0, R, false, obs_norm_buf_.data(), x_extra_.data());
  PolicyStep vs = PolicyStep::value_of(x_extra_.data(), rows, core_->value(T));
  vs.runs = R;
  vs.start = carry_.start();
  vs.h = carry_.hidden();
  vs.h_out = h_next_.data();
  core_->policy_step(boot_ws_, vs);
  core_->finish_rollout();
}

std::unique_ptr<EvalAgent> Rl2Learner::run_eval_agent(int64_t n, int run) {
  return std::make_unique<Agent>(*this, spec(), n, run);
}

void Rl2Learner::visit_run_state(StateVisitor& v, int run) {
  RolloutLearner::visit_run_state(v, run);
  v.part("obs_norm", obs_norms_[run]);
  v.part("carry", carry_, run);
}

}  // namespace dyn
