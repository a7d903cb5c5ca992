// DynaMITE-RL / VariBAD on any env: online beliefs in the rollout, the episode replay, belief updates.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

#include "algo/belief_learner.h"
#include "algo/evaluate.h"
#include "kernels/copy.h"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "kernels/reduce.h"
#include "sim/gridworld.h"

namespace dyn {

namespace {

// The policy's raw input [s, μ, log σ²] (the belief is data for the policy: no gradient flows back).
struct PolicyRaw {
  int O, d;
  const float *obs, *q;
  float* raw;
  DYN_HD void operator()(int64_t i) const {
    const int D = O + 2 * d, qw = 2 * d + 1;
    for (int k = 0; k < O; ++k) raw[i * D + k] = obs[i * O + k];
    for (int k = 0; k < 2 * d; ++k) raw[i * D + O + k] = q[i * qw + k];
  }
};

// close[i]: the head predicts a session end (σ(logit) > ½), or the ground truth with oracle sessions; precision /
// recall counts of the head's prediction, whatever closes the session.
struct CloseSessions {
  bool oracle;
  int d;
  int64_t n;  // rows per run
  const float* q;
  const uint8_t *start, *send_prev;
  uint8_t* close;
  double* counts;  // [runs, 3]
  DYN_HD void operator()(int64_t i) const {
    const bool predicted = !start[i] && q[i * (2 * d + 1) + 2 * d] > 0.0f;
    const bool truth = !start[i] && send_prev[i];
    close[i] = oracle ? truth : predicted;
    if (counts) {
      double* c = counts + (i / n) * 3;
      if (predicted && truth) atomic_add_hd(c + 0, 1.0);
      if (predicted && !truth) atomic_add_hd(c + 1, 1.0);
      if (!predicted && truth) atomic_add_hd(c + 2, 1.0);
    }
  }
};

// The gridworld's goal probe: for env i and goal g, the decoder's input for "stand on goal g and stay", from the
// belief's mean and the observation (the two goals' cells at obs[2..5]).
struct GoalProbeRows {
  int d, DI;
  const float *q, *obs;
  float* x;  // [2n, DI]
  DYN_HD void operator()(int64_t r) const {
    const int64_t i = r / 2;
    const int g = int(r % 2), qw = 2 * d + 1;
    float* row = x + r * DI;
    float* from = row + d;
    float* land = row + d + kGridObsDim + kGridActions;
    for (int k = 0; k < d; ++k) row[k] = q[i * qw + k];
    for (int k = 0; k < kGridActions; ++k) row[d + kGridObsDim + k] = k == kStay ? 1.0f : 0.0f;
    for (float* cell : {from, land}) {
      cell[0] = obs[i * kGridObsDim + 2 + 2 * g];
      cell[1] = obs[i * kGridObsDim + 3 + 2 * g];
      for (int k = 2; k < kGridObsDim; ++k) cell[k] = obs[i * kGridObsDim + k];
    }
  }
};

// hit[i] = the decoder ranks the rewarding goal (its cell is the latent) above the other.
struct GoalProbeHits {
  const float *rhat, *obs, *latent;
  double* hit;
  DYN_HD void operator()(int64_t i) const {
    const bool goal1 = obs[i * kGridObsDim + 4] == latent[i * kGridLatentDim] &&
                       obs[i * kGridObsDim + 5] == latent[i * kGridLatentDim + 1];
    hit[i] = (rhat[2 * i + 1] > rhat[2 * i]) == goal1 ? 1.0 : 0.0;
  }
};

struct AddHits {
  const double* sum;
  double* hits;
  int64_t n;
  DYN_HD void operator()(int64_t) const {
    hits[0] += sum[0];
    hits[1] += double(n);
  }
};

}  // namespace

// Evaluation of run `run`: the belief updated online (never reset within an episode), sessions closed as in the
// rollout, the mode of each step's action distribution; on the gridworld, the goal probe.
class BeliefLearner::Agent : public EvalAgent {
 public:
  Agent(BeliefLearner& l, const EnvSpec& spec, int64_t n, int run)
      : l_(l),
        spec_(spec),
        n_(n),
        run_(run),
        probe_(spec.name == "gridworld"),
        carry_(l.b_, spec, n, l.bc_.shape.hidden, 2 * l.d_),
        raw_(l.b_, size_t(n) * l.in_dim_),
        in_(l.b_, size_t(n) * l.in_dim_),
        obs_enc_(l.b_, size_t(n) * spec.obs_dim),
        send_prev_(l.b_, size_t(n)),
        close_(l.b_, size_t(n)),
        dec_in_(l.b_, probe_ ? size_t(2 * n) * l.bc_.shape.decoder_in() : 0),
        hit_(l.b_, probe_ ? size_t(n) : 0),
        hit_sum_(l.b_, 1),
        hits_(l.b_, 2) {}
  void begin(BatchEnv&) override {
    carry_.reset();
    send_prev_.zero();
    hits_.zero();
  }
  void act(const float* obs, const float* latent, const ActionBuffers& out, uint32_t) override {
    l_.encode_step(enc_, obs, carry_.prev_action(), carry_.prev_reward(), carry_.start(), carry_.cond(),
                   carry_.hidden(), n_, run_, 1, carry_.hidden(), raw_.data(), obs_enc_.data());
    const float* q = BeliefModel<float>::q(enc_);
    l_.close_sessions(q, carry_.start(), send_prev_.data(), n_, 1, close_.data(), carry_.cond(),
                      static_cast<double*>(nullptr));
    if (probe_) goal_probe(q, obs, latent);
    l_.in_norms_[run_].normalize(raw_.data(), in_.data(), n_);
    PolicyStep s = PolicyStep::mode(in_.data(), n_, out);
    s.run = run_;
    l_.core_->policy_step(ws_, s);
  }
  void after_step(const ActionBatch& a, const StepBatch& out) override {
    copy_values(l_.b_, out.session_end, send_prev_.data(), n_);
    carry_.after_step(a, out.reward, out.truncated, out.terminated);
  }
  // the belief q_t = [μ, log σ², termination logit] of the last act(), and on the gridworld the decoded reward of
  // standing on each goal
  std::vector<AgentColumns> columns() const override {
    const int d = l_.d_, qw = 2 * d + 1;
    const float* q = BeliefModel<float>::q(enc_);
    std::vector<AgentColumns> c = {
        {"belief_mean", q, qw, 0, d}, {"belief_logvar", q, qw, d, d}, {"termination_logit", q, qw, 2 * d, 1}};
    if (probe_) c.push_back({"goal_reward", dec_ws_.act.back().data(), 2, 0, 2});
    return c;
  }
  void add_figures(EvalStats& st) const override {
    if (!probe_) return;
    const std::vector<double> h = hits_.to_host();
    st.extra.emplace_back("eval_goal_accuracy", h[1] > 0 ? h[0] / h[1] : std::nan(""));
  }

 private:
  void goal_probe(const float* q, const float* obs, const float* latent) {
    const int d = l_.d_, DI = l_.bc_.shape.decoder_in();
    const float* p = l_.bparams_.value.data() + size_t(run_) * l_.blayout_.total();
    parallel_for(l_.b_, 2 * n_, GoalProbeRows{d, DI, q, obs, dec_in_.data()});
    l_.model_.decoder.forward(l_.b_, p, dec_in_.data(), int(2 * n_), dec_ws_);
    parallel_for(l_.b_, n_, GoalProbeHits{dec_ws_.act.back().data(), obs, latent, hit_.data()});
    reduce_sum(l_.b_, hit_.data(), size_t(n_), hit_sum_.data());
    parallel_for(l_.b_, 1, AddHits{hit_sum_.data(), hits_.data(), n_});
  }

  BeliefLearner& l_;
  EnvSpec spec_;
  int64_t n_;
  int run_;
  bool probe_;
  AgentCarry carry_;
  Buffer<float> raw_, in_, obs_enc_;
  Buffer<uint8_t> send_prev_, close_;
  Buffer<float> dec_in_;
  Buffer<double> hit_, hit_sum_, hits_;
  EncoderWorkspace<float> enc_;
  PolicyWorkspace ws_;
  MlpWorkspace<float> dec_ws_;
};

BeliefLearner::BeliefLearner(Backend b, const EnvConfig& env, int64_t n_envs, const PpoConfig& cfg,
                             const BeliefConfig& bc, const std::vector<uint32_t>& seeds)
    : RolloutLearner(b, env, n_envs, cfg, seeds),
      bc_(with_env_shape(bc, spec())),
      d_(bc.shape.latent),
      in_dim_(spec().obs_dim + 2 * bc.shape.latent),
      in_norms_(b, in_dim_, runs()),
      enc_norms_(b, spec().obs_dim, runs()),
      model_(b, bc_.shape, blayout_),
      bparams_(b, blayout_, salted_seeds(seeds_, 0x5eedu)),
      badam_(b, blayout_.total(), bc.adam, runs()),
      carry_(b, spec(), runs() * n_envs, bc.shape.hidden, bc.shape.cond_dim(), runs()),
      replays_(b, spec(), bc.replay_episodes, n_envs, bc.batch_episodes, env.session.reset_on_switch, runs()),
      obs_enc_(b, size_t(runs() * n_envs) * spec().obs_dim),
      send_prev_(b, size_t(runs() * n_envs)),
      close_(b, size_t(runs() * n_envs)),
      no_start_(b, size_t(runs() * n_envs)),
      h_scratch_(b, size_t(runs() * n_envs) * bc.shape.hidden),
      raw_(b, size_t(runs() * n_envs) * in_dim_),
      term_counts_(b, size_t(3 * runs())) {
  const int H = spec().horizon;
  if (cfg.rollout_steps % H != 0 && H % cfg.rollout_steps != 0)
    throw std::invalid_argument("belief learners need rollout_steps and the horizon to divide one another; got " +
                                std::to_string(cfg.rollout_steps) + " and " + std::to_string(H));
  for (const uint32_t seed : seeds_) sample_rngs_.emplace_back(seed);  // each run's sampling stream
  core_ = std::make_unique<PpoCore>(b, spec(), PolicyShape{in_dim_}, n_envs, cfg, seeds_, env.first_env);
  lws_.eps = Buffer<float>(b, size_t(runs()) * (H + 1) * bc.batch_episodes * d_);
  for (Buffer<uint8_t>* buf : {&send_prev_, &close_, &no_start_}) buf->zero();
  reset_envs();
}

BeliefLearner::~BeliefLearner() = default;

void BeliefLearner::encode_step(EncoderWorkspace<float>& ws, const float* obs, const ActionBatch& prev_a,
                                const float* prev_r, const uint8_t* start, const float* cond, const float* h, int64_t n,
                                int run0, int R, float* h_out, float* raw, float* obs_scratch) {
  const size_t P = blayout_.total();
  const float* p = bparams_.value.data() + size_t(run0) * P;
  const float* enc_obs = obs;
  if (bc_.normalize_obs) {
    enc_norms_.normalize(obs, obs_scratch, n, run0, R);
    enc_obs = obs_scratch;
  }
  model_.encode(p, enc_obs, prev_a.index, prev_a.value, prev_r, start, cond, h, 1, int(n), ws, R, P);
  // the GRU has read h: h_out may alias it
  copy_values(b_, ws.gru.h.data(), h_out, R * n * bc_.shape.hidden);
  parallel_for(b_, R * n, PolicyRaw{spec().obs_dim, d_, obs, BeliefModel<float>::q(ws), raw});
}

void BeliefLearner::close_sessions(const float* q, const uint8_t* start, const uint8_t* send_prev, int64_t n, int R,
                                   uint8_t* close, float* cond, double* counts) {
  parallel_for(b_, R * n, CloseSessions{bc_.oracle_sessions, d_, n, q, start, send_prev, close, counts});
  if (bc_.shape.conditioning) carry_final_belief(b_, q, close, R * n, d_, cond);
}

void BeliefLearner::after_collect(IterationStats* st) {
  for (int t = 0; t < cfg_.rollout_steps; ++t)  // host mirror of the rings: which collect steps pushed episodes
    if (clock_.truncates_after(t)) replays_.note_push();
  const std::vector<double> all = term_counts_.to_host();
  for (int r = 0; r < runs(); ++r) {
    const double* c = all.data() + 3 * r;
    st[r].add("term_precision", c[0] / (c[0] + c[1]), c[0] + c[1] > 0);
    st[r].add("term_recall", c[0] / (c[0] + c[2]), c[0] + c[2] > 0);
  }
}

void BeliefLearner::collect_steps() {
  const int T = cfg_.rollout_steps, R = runs();
  const int64_t n = n_, rows = R * n;
  core_->begin_rollout();
  term_counts_.zero();
  for (int t = 0; t < T; ++t) {
    const int k = clock_.index_in_episode(t);
    // the encoder's input is saved for the replay before the step
    replays_.record_obs(k, obs_.data());
    if (bc_.normalize_obs) enc_norms_.update(obs_.data(), n);
    // belief q_t from (s_t, a_{t−1}, r_{t−1}) and the carried state; a predicted (or true) session end closes the
    // session and carries its final belief into the conditioning input
    encode_step(roll_enc_, obs_.data(), carry_.prev_action(), carry_.prev_reward(), carry_.start(), carry_.cond(),
                carry_.hidden(), n, 0, R, carry_.hidden(), raw_.data(), obs_enc_.data());
    const float* q = BeliefModel<float>::q(roll_enc_);
    close_sessions(q, carry_.start(), send_prev_.data(), n, R, close_.data(), carry_.cond(), term_counts_.data());
    if (q_trace_)  // tests: the rollout's beliefs, [T, S·N, 2d+1]
      copy_values(b_, q, q_trace_ + int64_t(t) * rows * (2 * d_ + 1), rows * (2 * d_ + 1));
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
      // bootstrap: V at the final observation with the belief after the final transition (one more encoder step
      // from the carried state, which is not advanced)
      float* raw = raw_.data();
      encode_step(boot_enc_, final_obs_.data(), a, core_->reward(t), no_start_.data(), carry_.cond(), carry_.hidden(),
                  n, 0, R, h_scratch_.data(), raw, obs_enc_.data());
      in_norms_.normalize(raw, raw, n);
      PolicyStep v = PolicyStep::value_of(raw, rows, core_->final_value(t));
      v.runs = R;
      core_->policy_step(roll_ws_, v);
    }
    core_->track_step(t, sid_.data());
    // the next step's inputs: this action and reward, or a fresh start (belief and conditioning reset)
    carry_.after_step(a, core_->reward(t), core_->truncated(t), core_->terminated(t));
    copy_values(b_, send_.data(), send_prev_.data(), rows);
  }
  advance_counter(b_, step_dev_.data(), uint32_t(T));
  // V(s_T): the belief at the next observation, without advancing the carried state
  float* raw = raw_.data();
  encode_step(boot_enc_, obs_.data(), carry_.prev_action(), carry_.prev_reward(), carry_.start(), carry_.cond(),
              carry_.hidden(), n, 0, R, h_scratch_.data(), raw, obs_enc_.data());
  in_norms_.normalize(raw, raw, n);
  PolicyStep v = PolicyStep::value_of(raw, rows, core_->value(T));
  v.runs = R;
  core_->policy_step(roll_ws_, v);
  core_->finish_rollout();
}

void BeliefLearner::update_runs(IterationStats* st) {
  using clock = std::chrono::steady_clock;
  const int R = runs();
  const auto t0 = clock::now();
  core_->update(st);  // every run's; ends with a read of the loss statistics: the backend is idle here
  const auto t1 = clock::now();
  DYN_NVTX_RANGE("belief_update");
  std::vector<double> acc(size_t(5 * R), 0.0);  // [S, 5]
  int steps = 0;
  if (replays_.count() >= bc_.batch_episodes)  // every run's replay holds as many episodes
    for (; steps < bc_.updates_per_iteration; ++steps) {
      bparams_.grad.zero();
      belief_losses(acc.data());
      ++belief_steps_;
      badam_.step(bparams_.value.data(), bparams_.grad.data());  // each run's step on its part of [S, P]
    }
  synchronize(b_);
  const double t_update = std::chrono::duration<double>(t1 - t0).count();
  const double t_belief = std::chrono::duration<double>(clock::now() - t1).count();
  const char* names[5] = {"belief_loss", "belief_recon", "belief_kl", "belief_consistency", "belief_bce"};
  for (int r = 0; r < R; ++r) {
    for (int k = 0; k < 5; ++k) st[r].add(names[k], acc[size_t(5 * r + k)] / std::max(steps, 1), steps > 0);
    // where the update's time goes: PPO's minibatches, then the belief steps (of the whole batch)
    st[r].extra.emplace_back("ppo_update_s", t_update);
    st[r].extra.emplace_back("belief_update_s", t_belief);
  }
}

EpisodeBatchView<float> BeliefLearner::gather_runs(const std::vector<std::vector<int32_t>>& slots) {
  const EpisodeBatchView<float> ep = replays_.gather(slots);
  if (bc_.normalize_obs) {  // the stored raw observations, normalised with each run's current statistics
    const int64_t B = ep.batch, H = spec().horizon;
    enc_norms_.normalize(replays_.batch_obs(), replays_.batch_obs(), (H + 1) * B, 0, runs());
    if (float* land = replays_.batch_landing()) enc_norms_.normalize(land, land, H * B, 0, runs());
  }
  return ep;
}

EpisodeBatchView<float> BeliefLearner::gather_episodes(const std::vector<int32_t>& slots, int run) {
  const EpisodeBatchView<float> all = gather_runs(std::vector<std::vector<int32_t>>(size_t(runs()), slots));
  return episodes_of_run(all, run, spec().obs_dim, spec().action_dim);
}

void BeliefLearner::belief_losses(double* acc) {
  const int B = bc_.batch_episodes, H = spec().horizon, R = runs();
  const BeliefLossConfig& lc = bc_.loss;
  // B distinct episodes per run, uniformly from the filled part of its ring, gathered seed-major [S, T(+1), B]
  const EpisodeBatchView<float> ep = gather_runs(replays_.sample(B, sample_rngs_));
  // each run's decode plan from its sessions (one read of [S, T, B]), then one plan over the runs
  const std::vector<int32_t> sid = replays_.batch_session_ids();
  std::vector<DecodePlan> plans;
  const size_t per_run = size_t(H) * B;
  for (int r = 0; r < R; ++r) {
    const std::vector<int32_t> run_sid(sid.begin() + long(r * per_run), sid.begin() + long((r + 1) * per_run));
    plans.push_back(plan_decodes(run_sid, H, B, lc.session_recon, lc.elbo_samples, lc.decode_samples, seeds_[size_t(r)],
                                 belief_steps_));
  }
  const DecodePlan plan = concat_plans(plans, H, B);
  draw_belief_noise_runs(b_, core_->seeds_dev(), R, belief_steps_, int64_t(H + 1) * B * d_, lws_.eps.data());
  const std::vector<BeliefLossStats> st = belief_loss_runs<float>(model_, bparams_.value.data(), bparams_.grad.data(),
                                                                  blayout_.total(), ep, plan, lc, lws_);
  for (int r = 0; r < R; ++r) {
    double* a = acc + 5 * r;
    const BeliefLossStats& s = st[size_t(r)];
    a[0] += s.total;
    a[1] += s.recon;
    a[2] += s.kl;
    a[3] += s.consistency;
    a[4] += s.bce;
  }
}

std::unique_ptr<EvalAgent> BeliefLearner::run_eval_agent(int64_t n, int run) {
  return std::make_unique<Agent>(*this, spec(), n, run);
}

void BeliefLearner::visit_run_state(StateVisitor& v, int run) {
  RolloutLearner::visit_run_state(v, run);
  const std::string saved = v.prefix;
  v.prefix += "belief.";
  v.part("input_norm", in_norms_[run]);
  v.part("encoder_norm", enc_norms_[run]);
  v.part("params", bparams_, run);
  v.part("adam", badam_, run);
  v.part("carry", carry_, run);
  v.part("replay", replays_, run);
  v.rng("sample_rng", sample_rngs_[size_t(run)]);
  v.value("steps", belief_steps_);
  v.share("session_end_prev", send_prev_, run, runs());
  v.share("close", close_, run, runs());
  v.prefix = saved;
}

}  // namespace dyn
