// ContraBAR on any env: the CPC encoder online in the rollout, the episode replay, CPC steps after each PPO update.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

#include "algo/contrabar.h"
#include "algo/evaluate.h"
#include "kernels/copy.h"
#include "kernels/nvtx.h"

namespace dyn {

// Evaluation of run `run`: the encoder's state updated online (restarted only where an episode starts), the mode of
// each step's action distribution.
class ContrabarLearner::Agent : public EvalAgent {
 public:
  Agent(ContrabarLearner& l, const EnvSpec& spec, int64_t n, int run)
      : l_(l),
        n_(n),
        run_(run),
        carry_(l.b_, spec, n, l.cc_.shape.hidden, 0),
        raw_(l.b_, size_t(n) * l.in_dim_),
        obs_enc_(l.b_, size_t(n) * spec.obs_dim) {}
  void begin(BatchEnv&) override { carry_.reset(); }
  void act(const float* obs, const float*, const ActionBuffers& out, uint32_t) override {
    l_.encode_step(enc_, obs, carry_.prev_action(), carry_.prev_reward(), carry_.start(), carry_.hidden(), n_, run_, 1,
                   carry_.hidden(), raw_.data(), obs_enc_.data());
    l_.in_norms_[run_].normalize(raw_.data(), raw_.data(), n_);
    PolicyStep s = PolicyStep::mode(raw_.data(), n_, out);
    s.run = run_;
    l_.core_->policy_step(ws_, s);
  }
  void after_step(const ActionBatch& a, const StepBatch& out) override {
    carry_.after_step(a, out.reward, out.truncated, out.terminated);
  }
  // the context c_t (the encoder GRU's state) after act()
  std::vector<AgentColumns> columns() const override {
    const int H = l_.cc_.shape.hidden;
    return {{"context", carry_.hidden(), H, 0, H}};
  }

 private:
  ContrabarLearner& l_;
  int64_t n_;
  int run_;
  AgentCarry carry_;
  Buffer<float> raw_, obs_enc_;
  CpcEncoderWorkspace<float> enc_;
  PolicyWorkspace ws_;
};

ContrabarLearner::ContrabarLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg,
                                   const ContrabarConfig& cc, const std::vector<uint32_t>& seeds)
    : RolloutLearner(b, env, n_envs, cfg, seeds),
      cc_(with_env_shape(cc, spec())),
      in_dim_(spec().obs_dim + cc.shape.hidden),
      in_norms_(b, in_dim_, runs()),
      enc_norms_(b, spec().obs_dim, runs()),
      model_(b, cc_.shape, clayout_),
      cparams_(b, clayout_, salted_seeds(seeds_, 0xc0c0u)),
      cadam_(b, clayout_.total(), cc.adam, runs()),
      carry_(b, spec(), runs() * n_envs, cc.shape.hidden, 0, runs()),
      replays_(b, spec(), cc.replay_episodes, n_envs, cc.batch_episodes, false, runs()),
      obs_enc_(b, size_t(runs() * n_envs) * spec().obs_dim),
      no_start_(b, size_t(runs() * n_envs)),
      h_scratch_(b, size_t(runs() * n_envs) * cc.shape.hidden),
      raw_(b, size_t(runs() * n_envs) * in_dim_) {
  const int H = spec().horizon;
  if (cfg.rollout_steps % H != 0 && H % cfg.rollout_steps != 0)
    throw std::invalid_argument("contrabar needs rollout_steps and the horizon to divide one another; got " +
                                std::to_string(cfg.rollout_steps) + " and " + std::to_string(H));
  if (cc.batch_episodes < 2)
    throw std::invalid_argument("contrabar.batch_episodes = " + std::to_string(cc.batch_episodes) +
                                ": CPC negatives come from the other trajectories of a batch, need at least 2");
  for (const uint32_t seed : seeds_) sample_rngs_.emplace_back(seed);  // each run's sampling stream
  core_ = std::make_unique<PpoCore>(b, spec(), PolicyShape{in_dim_}, n_envs, cfg, seeds_, env.first_env);
  no_start_.zero();
  reset_envs();
}

ContrabarLearner::~ContrabarLearner() = default;

void ContrabarLearner::encode_step(CpcEncoderWorkspace<float>& ws, const float* obs, const ActionBatch& prev_a,
                                   const float* prev_r, const uint8_t* start, const float* h, int64_t n, int run0,
                                   int R, float* h_out, float* raw, float* obs_scratch) {
  const size_t P = clayout_.total();
  const float* enc_obs = obs;
  if (cc_.normalize_obs) {
    enc_norms_.normalize(obs, obs_scratch, n, run0, R);
    enc_obs = obs_scratch;
  }
  const int O = spec().obs_dim, H = cc_.shape.hidden;
  const int64_t rows = R * n;
  model_.encode(cparams_.value.data() + size_t(run0) * P, enc_obs, prev_a.index, prev_a.value, prev_r, start, h, 1,
                int(n), ws, R, P);
  // the GRU has read h: h_out may alias it
  copy_values(b_, ws.gru.h.data(), h_out, rows * H);
  place_columns(b_, obs, rows, O, raw, in_dim_, 0);  // the policy's input [s, h]: the encoder's state is data for it
  place_columns(b_, ws.gru.h.data(), rows, H, raw, in_dim_, O);
}

void ContrabarLearner::after_collect(IterationStats*) {
  for (int t = 0; t < cfg_.rollout_steps; ++t)  // host mirror of the rings: which collect steps pushed episodes
    if (clock_.truncates_after(t)) replays_.note_push();
}

void ContrabarLearner::collect_steps() {
  const int T = cfg_.rollout_steps, R = runs();
  const int64_t n = n_, rows = R * n;
  core_->begin_rollout();
  for (int t = 0; t < T; ++t) {
    const int k = clock_.index_in_episode(t);
    replays_.record_obs(k, obs_.data());
    if (cc_.normalize_obs) enc_norms_.update(obs_.data(), n);
    // the context h_t from (s_t, a_{t−1}, r_{t−1}) and the carried state
    encode_step(roll_enc_, obs_.data(), carry_.prev_action(), carry_.prev_reward(), carry_.start(), carry_.hidden(), n,
                0, R, carry_.hidden(), raw_.data(), obs_enc_.data());
    in_norms_.update(raw_.data(), n);
    in_norms_.normalize(raw_.data(), core_->input(t), n);
    const PolicyStep ps = rollout_policy_step(t);
    core_->policy_step(roll_ws_, ps);
    const ActionBatch a = ps.actions.batch();
    step_envs(t, ps);
    replays_.record_step(k, ps.actions.batch(), core_->reward(t), final_obs_.data(), sid_.data(), send_.data());
    if (clock_.truncates_after(t)) {  // time limit: the episode is complete
      replays_.record_obs(spec().horizon, final_obs_.data());
      replays_.push();
      // bootstrap: V at the final observation with the context after the final transition (one more encoder step
      // from the carried state, which is not advanced)
      float* raw = raw_.data();
      encode_step(boot_enc_, final_obs_.data(), a, core_->reward(t), no_start_.data(), carry_.hidden(), n, 0, R,
                  h_scratch_.data(), raw, obs_enc_.data());
      in_norms_.normalize(raw, raw, n);
      PolicyStep v = PolicyStep::value_of(raw, rows, core_->final_value(t));
      v.runs = R;
      core_->policy_step(roll_ws_, v);
    }
    core_->track_step(t, sid_.data());
    carry_.after_step(a, core_->reward(t), core_->truncated(t), core_->terminated(t));
  }
  advance_counter(b_, step_dev_.data(), uint32_t(T));
  // V(s_T): the context at the next observation, without advancing the carried state
  float* raw = raw_.data();
  encode_step(boot_enc_, obs_.data(), carry_.prev_action(), carry_.prev_reward(), carry_.start(), carry_.hidden(), n, 0,
              R, h_scratch_.data(), raw, obs_enc_.data());
  in_norms_.normalize(raw, raw, n);
  PolicyStep v = PolicyStep::value_of(raw, rows, core_->value(T));
  v.runs = R;
  core_->policy_step(roll_ws_, v);
  core_->finish_rollout();
}

std::vector<CpcLossStats> ContrabarLearner::cpc_losses() {
  const int B = cc_.batch_episodes, H = spec().horizon, R = runs();
  // B distinct episodes per run, uniformly from the filled part of its ring, gathered seed-major [S, T(+1), B]
  const EpisodeBatchView<float> ep = replays_.gather(replays_.sample(B, sample_rngs_));
  if (cc_.normalize_obs)  // the stored raw observations, normalised with each run's current statistics
    enc_norms_.normalize(replays_.batch_obs(), replays_.batch_obs(), int64_t(H + 1) * B, 0, R);
  std::vector<CpcPlan> plans;
  for (int r = 0; r < R; ++r)
    plans.push_back(plan_cpc(H, B, cc_.shape.lookahead, cc_.shape.negatives, seeds_[size_t(r)], uint32_t(cpc_steps_)));
  const CpcPlan plan = concat_cpc_plans(plans);
  return model_.loss_runs(cparams_.value.data(), cparams_.grad.data(), clayout_.total(), ep, plan, lws_);
}

void ContrabarLearner::update_runs(IterationStats* st) {
  using clock = std::chrono::steady_clock;
  const int R = runs(), K = cc_.shape.lookahead;
  const auto t0 = clock::now();
  core_->update(st);  // every run's; ends with a read of the loss statistics: the backend is idle here
  const auto t1 = clock::now();
  DYN_NVTX_RANGE("cpc_update");
  std::vector<double> loss(size_t(R), 0.0), acc(size_t(R), 0.0), acc_k(size_t(R * K), 0.0);  // [S], [S], [S, K]
  int steps = 0;
  if (replays_.count() >= cc_.batch_episodes)  // every run's replay holds as many episodes
    for (; steps < cc_.updates_per_iteration; ++steps) {
      if (cc_.lr_halve_after > 0 && cpc_steps_ == cc_.lr_halve_after) cadam_.set_lr(cadam_.lr() * 0.5f);
      cparams_.grad.zero();
      const std::vector<CpcLossStats> all = cpc_losses();
      for (int r = 0; r < R; ++r) {
        const CpcLossStats& s = all[size_t(r)];
        loss[size_t(r)] += s.loss;
        acc[size_t(r)] += s.accuracy;
        for (int k = 0; k < K; ++k) acc_k[size_t(r * K + k)] += s.accuracy_k[size_t(k)];
      }
      cadam_.step(cparams_.value.data(), cparams_.grad.data());  // each run's step on its part of [S, P]
      ++cpc_steps_;
    }
  synchronize(b_);
  const int over = std::max(steps, 1);
  const double t_update = std::chrono::duration<double>(t1 - t0).count();
  const double t_cpc = std::chrono::duration<double>(clock::now() - t1).count();
  for (int r = 0; r < R; ++r) {
    st[r].add("cpc_loss", loss[size_t(r)] / over, steps > 0);
    st[r].add("cpc_accuracy", acc[size_t(r)] / over, steps > 0);
    for (int k = 0; k < K; ++k)
      st[r].add("cpc_accuracy_k" + std::to_string(k + 1), acc_k[size_t(r * K + k)] / over, steps > 0);
    st[r].extra.emplace_back("cpc_lr", double(cadam_.lr()));
    // where the update's time goes: PPO's minibatches, then the CPC steps (of the whole batch)
    st[r].extra.emplace_back("ppo_update_s", t_update);
    st[r].extra.emplace_back("cpc_update_s", t_cpc);
  }
}

std::unique_ptr<EvalAgent> ContrabarLearner::run_eval_agent(int64_t n, int run) {
  return std::make_unique<Agent>(*this, spec(), n, run);
}

void ContrabarLearner::visit_run_state(StateVisitor& v, int run) {
  RolloutLearner::visit_run_state(v, run);
  const std::string saved = v.prefix;
  v.prefix += "contrabar.";
  v.part("input_norm", in_norms_[run]);
  v.part("encoder_norm", enc_norms_[run]);
  v.part("params", cparams_, run);
  v.part("adam", cadam_, run);
  v.part("carry", carry_, run);
  v.part("replay", replays_, run);
  v.rng("sample_rng", sample_rngs_[size_t(run)]);
  v.value("steps", cpc_steps_);
  v.prefix = saved;
}

}  // namespace dyn
