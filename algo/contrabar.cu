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

// Evaluation: the encoder's state updated online (restarted only where an episode starts), the mode of each step's
// action distribution.
class ContrabarLearner::Agent : public EvalAgent {
 public:
  Agent(ContrabarLearner& l, const EnvSpec& spec, int64_t n)
      : l_(l),
        n_(n),
        carry_(l.b_, spec, n, l.cc_.shape.hidden, 0),
        raw_(l.b_, size_t(n) * l.in_dim_),
        obs_enc_(l.b_, size_t(n) * spec.obs_dim) {}
  void begin(BatchEnv&) override { carry_.reset(); }
  void act(const float* obs, const float*, const ActionBuffers& out, uint32_t) override {
    l_.encode_step(enc_, obs, carry_.prev_action(), carry_.prev_reward(), carry_.start(), carry_.hidden(), n_,
                   carry_.hidden(), raw_.data(), obs_enc_.data());
    l_.in_norm_.normalize(raw_.data(), raw_.data(), n_);
    l_.core_->policy_step(ws_, PolicyStep::mode(raw_.data(), n_, out));
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
  AgentCarry carry_;
  Buffer<float> raw_, obs_enc_;
  CpcEncoderWorkspace<float> enc_;
  PolicyWorkspace ws_;
};

ContrabarLearner::ContrabarLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg,
                                   const ContrabarConfig& cc)
    : RolloutLearner(b, env, n_envs, cfg),
      cc_(with_env_shape(cc, spec())),
      in_dim_(spec().obs_dim + cc.shape.hidden),
      in_norm_(b, in_dim_),
      enc_norm_(b, spec().obs_dim),
      model_(b, cc_.shape, clayout_),
      cparams_(b, clayout_, env.seed ^ 0xc0c0u),
      cadam_(b, clayout_.total(), cc.adam),
      sample_rng_(env.seed),
      carry_(b, spec(), n_envs, cc.shape.hidden, 0),
      replay_(b, spec(), cc.replay_episodes, n_envs, cc.batch_episodes, false),
      obs_enc_(b, size_t(n_envs) * spec().obs_dim),
      no_start_(b, size_t(n_envs)),
      h_scratch_(b, size_t(n_envs) * cc.shape.hidden),
      raw_(b, size_t(n_envs) * in_dim_) {
  const int H = spec().horizon;
  if (cfg.rollout_steps % H != 0 && H % cfg.rollout_steps != 0)
    throw std::invalid_argument("contrabar needs rollout_steps and the horizon to divide one another; got " +
                                std::to_string(cfg.rollout_steps) + " and " + std::to_string(H));
  if (cc.batch_episodes < 2)
    throw std::invalid_argument("contrabar.batch_episodes = " + std::to_string(cc.batch_episodes) +
                                ": CPC negatives come from the other trajectories of a batch, need at least 2");
  core_ = std::make_unique<PpoCore>(b, spec(), PolicyShape{in_dim_}, n_envs, cfg, env.seed, env.first_env);
  no_start_.zero();
  env_->reset(obs_.data(), nullptr);
}

ContrabarLearner::~ContrabarLearner() = default;

void ContrabarLearner::encode_step(CpcEncoderWorkspace<float>& ws, const float* obs, const ActionBatch& prev_a,
                                   const float* prev_r, const uint8_t* start, const float* h, int64_t n, float* h_out,
                                   float* raw, float* obs_scratch) {
  const float* enc_obs = obs;
  if (cc_.normalize_obs) {
    enc_norm_.normalize(obs, obs_scratch, n);
    enc_obs = obs_scratch;
  }
  const int O = spec().obs_dim, H = cc_.shape.hidden;
  model_.encode(cparams_.value.data(), enc_obs, prev_a.index, prev_a.value, prev_r, start, h, 1, int(n), ws);
  // the GRU has read h: h_out may alias it
  copy_values(b_, ws.gru.h.data(), h_out, n * H);
  place_columns(b_, obs, n, O, raw, in_dim_, 0);  // the policy's input [s, h]: the encoder's state is data for it
  place_columns(b_, ws.gru.h.data(), n, H, raw, in_dim_, O);
}

void ContrabarLearner::after_collect(IterationStats*) {
  for (int t = 0; t < cfg_.rollout_steps; ++t)  // host mirror of the ring: which collect steps pushed episodes
    if (clock_.truncates_after(t)) replay_.note_push();
}

void ContrabarLearner::collect_steps() {
  const int T = cfg_.rollout_steps;
  const int64_t n = n_;
  core_->begin_rollout();
  for (int t = 0; t < T; ++t) {
    const int k = clock_.index_in_episode(t);
    replay_.record_obs(k, obs_.data());
    if (cc_.normalize_obs) enc_norm_.update(obs_.data(), n);
    // the context h_t from (s_t, a_{t−1}, r_{t−1}) and the carried state
    encode_step(roll_enc_, obs_.data(), carry_.prev_action(), carry_.prev_reward(), carry_.start(), carry_.hidden(), n,
                carry_.hidden(), raw_.data(), obs_enc_.data());
    in_norm_.update(raw_.data(), n);
    in_norm_.normalize(raw_.data(), core_->input(t), n);
    const PolicyStep ps = rollout_policy_step(t);
    core_->policy_step(roll_ws_, ps);
    const ActionBatch a = ps.actions.batch();
    env_->step(a, step_outputs(t), ps.step);
    replay_.record_step(k, a, core_->reward(t), final_obs_.data(), sid_.data(), send_.data());
    if (clock_.truncates_after(t)) {  // time limit: the episode is complete
      replay_.record_obs(spec().horizon, final_obs_.data());
      replay_.push();
      // bootstrap: V at the final observation with the context after the final transition (one more encoder step
      // from the carried state, which is not advanced)
      float* raw = raw_.data();
      encode_step(boot_enc_, final_obs_.data(), a, core_->reward(t), no_start_.data(), carry_.hidden(), n,
                  h_scratch_.data(), raw, obs_enc_.data());
      in_norm_.normalize(raw, raw, n);
      core_->policy_step(roll_ws_, PolicyStep::value_of(raw, n, core_->final_value(t)));
    }
    core_->track_step(t, sid_.data());
    carry_.after_step(a, core_->reward(t), core_->truncated(t), core_->terminated(t));
  }
  advance_counter(b_, step_dev_.data(), uint32_t(T));
  // V(s_T): the context at the next observation, without advancing the carried state
  float* raw = raw_.data();
  encode_step(boot_enc_, obs_.data(), carry_.prev_action(), carry_.prev_reward(), carry_.start(), carry_.hidden(), n,
              h_scratch_.data(), raw, obs_enc_.data());
  in_norm_.normalize(raw, raw, n);
  core_->policy_step(roll_ws_, PolicyStep::value_of(raw, n, core_->value(T)));
  core_->finish_rollout();
}

CpcLossStats ContrabarLearner::cpc_step() {
  const int B = cc_.batch_episodes, H = spec().horizon;
  // B distinct episodes, uniformly from the filled part of the ring
  const EpisodeBatchView<float> ep = replay_.gather(replay_.sample(B, sample_rng_));
  if (cc_.normalize_obs)  // the stored raw observations, normalised with the current statistics
    enc_norm_.normalize(replay_.batch_obs(), replay_.batch_obs(), int64_t(H + 1) * B);
  const CpcPlan plan = plan_cpc(H, B, cc_.shape.lookahead, cc_.shape.negatives, env_->seed(), uint32_t(cpc_steps_));
  if (cc_.lr_halve_after > 0 && cpc_steps_ == cc_.lr_halve_after) cadam_.set_lr(cadam_.lr() * 0.5f);
  cparams_.grad.zero();
  const CpcLossStats s = model_.loss(cparams_.value.data(), cparams_.grad.data(), ep, plan, lws_);
  cadam_.step(cparams_.value.data(), cparams_.grad.data());
  ++cpc_steps_;
  return s;
}

void ContrabarLearner::update(IterationStats& st) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  core_->update(st);  // ends with a read of the loss statistics: the backend is idle here
  const auto t1 = clock::now();
  DYN_NVTX_RANGE("cpc_update");
  const int K = cc_.shape.lookahead;
  double loss = 0, acc = 0;
  std::vector<double> acc_k(size_t(K), 0.0);
  int steps = 0;
  if (replay_.count() >= cc_.batch_episodes)
    for (; steps < cc_.updates_per_iteration; ++steps) {
      const CpcLossStats s = cpc_step();
      loss += s.loss;
      acc += s.accuracy;
      for (int k = 0; k < K; ++k) acc_k[size_t(k)] += s.accuracy_k[size_t(k)];
    }
  synchronize(b_);
  const int over = std::max(steps, 1);
  st.add("cpc_loss", loss / over, steps > 0);
  st.add("cpc_accuracy", acc / over, steps > 0);
  for (int k = 0; k < K; ++k) st.add("cpc_accuracy_k" + std::to_string(k + 1), acc_k[size_t(k)] / over, steps > 0);
  st.extra.emplace_back("cpc_lr", double(cadam_.lr()));
  // where the update's time goes: PPO's minibatches, then the CPC steps
  st.extra.emplace_back("ppo_update_s", std::chrono::duration<double>(t1 - t0).count());
  st.extra.emplace_back("cpc_update_s", std::chrono::duration<double>(clock::now() - t1).count());
}

std::unique_ptr<EvalAgent> ContrabarLearner::eval_agent(int64_t n) { return std::make_unique<Agent>(*this, spec(), n); }

void ContrabarLearner::visit_state(StateVisitor& v) {
  RolloutLearner::visit_state(v);
  const std::string saved = v.prefix;
  v.prefix += "contrabar.";
  v.part("input_norm", in_norm_);
  v.part("encoder_norm", enc_norm_);
  v.part("params", cparams_);
  v.part("adam", cadam_);
  v.part("carry", carry_);
  v.part("replay", replay_);
  v.rng("sample_rng", sample_rng_);
  v.value("steps", cpc_steps_);
  v.prefix = saved;
}

}  // namespace dyn
