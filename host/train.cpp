// Training driver: the loop, the run directory, metrics files and the progress line.
#include "host/train.h"

#include <omp.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "algo/belief_learner.h"
#include "algo/ppo.h"
#include "algo/rl2.h"
#include "host/checked_io.h"
#include "host/checkpoint.h"
#include "host/config.h"
#include "kernels/collective.h"

namespace dyn {

namespace {

namespace fs = std::filesystem;

}  // namespace

PpoConfig ppo_config_of(const Config& c) {
  PpoConfig p;
  p.rollout_steps = int(c.get_int("train.rollout_steps"));
  p.epochs = int(c.get_int("train.epochs"));
  p.minibatches = int(c.get_int("train.minibatches"));
  p.shuffle = c.get_string("train.shuffle") == "per_env" ? ShufflePlan::per_env : ShufflePlan::global;
  p.gamma = float(c.get_real("train.gamma"));
  p.gae_lambda = float(c.get_real("train.gae_lambda"));
  p.clip = float(c.get_real("train.clip"));
  p.vf_coef = float(c.get_real("train.vf_coef"));
  p.entropy_coef = float(c.get_real("train.entropy_coef"));
  p.hidden = int(c.get_int("train.hidden"));
  p.adam.lr = float(c.get_real("train.lr"));
  p.adam.eps = float(c.get_real("train.adam_eps"));
  p.adam.max_grad_norm = float(c.get_real("train.max_grad_norm"));
  p.cuda_graphs = c.get_bool("run.cuda_graphs");
  return p;
}

namespace {

std::string timestamp() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
  return buf;
}

double json_number(double x) { return std::isfinite(x) ? x : NAN; }

// The name of the first non-finite loss, gradient norm or learner metric of an iteration (and of its evaluation),
// else "". The train return is NaN by design in a rollout where no episode finished, so it is not checked.
std::string first_non_finite(const IterationStats& st, const EvalStats* eval) {
  const std::pair<const char*, double> core[] = {
      {"policy_loss", st.policy_loss}, {"value_loss", st.value_loss},       {"entropy", st.entropy},
      {"approx_kl", st.approx_kl},     {"clip_fraction", st.clip_fraction}, {"grad_norm", st.grad_norm}};
  for (const auto& [name, v] : core)
    if (!std::isfinite(v)) return name;
  for (const auto& [name, v] : st.extra)
    if (!std::isfinite(v) && std::find(st.unmeasured.begin(), st.unmeasured.end(), name) == st.unmeasured.end())
      return name;
  if (eval) {
    if (!std::isfinite(eval->mean_return)) return "eval_return";
    for (const auto& [name, v] : eval->extra)
      if (!std::isfinite(v)) return name;
  }
  return "";
}

SessionParams session_params_from_config(const Config& c) {
  SessionParams s;
  const std::string& model = c.get_string("env.session_model");
  s.horizon = int(c.get_int("env.horizon"));
  s.sessions = int(c.get_int("env.sessions"));
  s.model = model == "poisson"     ? SessionModel::poisson
            : model == "bernoulli" ? SessionModel::bernoulli
                                   : SessionModel::fixed;
  s.switch_prob = float(c.get_real("env.switch_prob"));
  s.reset_on_switch = c.get_bool("env.reset_on_switch");
  return s;
}

}  // namespace

EnvConfig env_config_of(const Config& c) {
  EnvConfig e;
  e.name = c.get_string("env.name");
  e.session = session_params_from_config(c);
  e.seed = uint32_t(c.get_int("run.seed"));
  // the env's own keys (env.* keys that belong to some envs only), as written
  for (const KeySpec& k : config_schema())
    if (k.key.rfind("env.", 0) == 0 && !k.envs.empty() && c.has(k.key))
      e.options[k.key.substr(4)] = c.value_string(k.key);
  return e;
}

namespace {

// Fault injection for the tests. DYN_INJECT_NAN=<metric>@<iteration>: that metric of that iteration's statistics
// becomes NaN, as a diverging loss would make it. DYN_INJECT_SIGTERM=<iteration>: the process sends itself SIGTERM
// during that iteration, as `kill` would.
void inject_sigterm(int64_t iteration) {
  static const char* spec = std::getenv("DYN_INJECT_SIGTERM");
  if (spec && std::stoll(spec) == iteration) std::raise(SIGTERM);
}
void inject_nan(IterationStats& st, int64_t iteration) {
  static const char* spec = std::getenv("DYN_INJECT_NAN");
  if (!spec) return;
  const std::string s = spec;
  const size_t at = s.find('@');
  if (at == std::string::npos || std::stoll(s.substr(at + 1)) != iteration) return;
  const std::string name = s.substr(0, at);
  if (name == "policy_loss") st.policy_loss = NAN;
  for (auto& [k, v] : st.extra)
    if (k == name) v = NAN;
}

// The run's name: the algorithm plus its ablations (e.g. dynamite-no-consistency).
std::string variant_of(const Config& cfg) {
  std::string v = cfg.get_string("run.algo");
  if (v != "dynamite") return v;
  if (!cfg.get_bool("belief.consistency")) v += "-no-consistency";
  if (!cfg.get_bool("belief.conditioning")) v += "-no-conditioning";
  if (!cfg.get_bool("belief.session_recon")) v += "-no-session-recon";
  if (cfg.get_bool("belief.oracle_sessions")) v += "-oracle-sessions";
  return v;
}

}  // namespace

BeliefConfig belief_config_of(const Config& c) {
  const bool varibad = c.get_string("run.algo") == "varibad";
  BeliefConfig b = varibad ? BeliefConfig::varibad() : BeliefConfig::dynamite();
  if (!varibad) {
    b.shape.conditioning = b.loss.conditioning = c.get_bool("belief.conditioning");
    b.loss.session_recon = c.get_bool("belief.session_recon");
    b.loss.beta = c.get_bool("belief.consistency") ? c.get_real("belief.beta") : 0.0;
    b.loss.termination = c.get_real("belief.termination_weight");
    b.oracle_sessions = c.get_bool("belief.oracle_sessions");
  }
  b.loss.kl_weight = c.get_real("belief.kl_weight");
  b.loss.elbo_samples = int(c.get_int("belief.elbo_samples"));
  b.loss.decode_samples = int(c.get_int("belief.decode_samples"));
  b.adam.lr = float(c.get_real("belief.lr"));
  b.shape.latent = int(c.get_int("belief.latent"));
  b.shape.embed = int(c.get_int("belief.embed"));
  b.shape.hidden = int(c.get_int("belief.hidden"));
  b.shape.trunk = int(c.get_int("belief.trunk"));
  b.shape.state_decoder = c.get_bool("belief.state_decoder");
  b.normalize_obs = c.get_bool("belief.normalize_obs");
  b.replay_episodes = int(c.get_int("belief.replay_episodes"));
  b.batch_episodes = int(c.get_int("belief.batch_episodes"));
  b.updates_per_iteration = int(c.get_int("belief.updates"));
  return b;
}

ContrabarConfig contrabar_config_of(const Config& c) {
  ContrabarConfig cc;
  cc.shape.embed_s = int(c.get_int("contrabar.embed_s"));
  cc.shape.embed_a = int(c.get_int("contrabar.embed_a"));
  cc.shape.embed_r = int(c.get_int("contrabar.embed_r"));
  cc.shape.hidden = int(c.get_int("contrabar.hidden"));
  cc.shape.lookahead = int(c.get_int("contrabar.lookahead"));
  cc.shape.negatives = int(c.get_int("contrabar.negatives"));
  cc.adam.lr = float(c.get_real("contrabar.lr"));
  cc.adam.max_grad_norm = float(c.get_real("contrabar.max_grad_norm"));
  cc.lr_halve_after = int(c.get_int("contrabar.lr_halve_after"));
  cc.normalize_obs = c.get_bool("contrabar.normalize_obs");
  cc.replay_episodes = int(c.get_int("contrabar.replay_episodes"));
  cc.batch_episodes = int(c.get_int("contrabar.batch_episodes"));
  cc.updates_per_iteration = int(c.get_int("contrabar.updates"));
  return cc;
}

namespace {

Rl2Shape rl2_shape_of(const Config& c) { return Rl2Shape{int(c.get_int("rl2.embed")), int(c.get_int("rl2.hidden"))}; }

}  // namespace

std::unique_ptr<Learner> make_learner(const Config& c, Backend b) {
  EnvConfig env = env_config_of(c);
  int64_t n = c.get_int("run.envs");
  const std::string algo = c.get_string("run.algo");
  PpoConfig ppo = ppo_config_of(c);
  const Collective& ranks = Collective::world();
  if (ranks.distributed()) {  // data parallel: this rank's share of the envs, and minibatches every rank can share
    const int R = ranks.size();
    if (n % R != 0)
      throw std::invalid_argument("run.envs = " + std::to_string(n) + " does not split over " + std::to_string(R) +
                                  " data-parallel ranks: allowed a multiple of the ranks");
    if (ppo.shuffle != ShufflePlan::per_env)
      throw std::invalid_argument(
          "train.shuffle = \"global\" with " + std::to_string(R) +
          " data-parallel ranks: allowed \"per_env\" (--set train.shuffle=per_env), whose minibatches take the same "
          "share from every rank");
    n /= R;
    if (algo == "rl2" && n % ppo.minibatches != 0)
      throw std::invalid_argument("train.minibatches = " + std::to_string(ppo.minibatches) + " with " +
                                  std::to_string(R) + " data-parallel ranks: allowed a divisor of each rank's " +
                                  std::to_string(n) +
                                  " envs (run.envs / ranks; rl2's minibatches are whole sequences)");
    env.first_env = uint32_t(int64_t(ranks.rank()) * n);
    ppo.cuda_graphs = false;  // the ranks' sums run inside the stages (MPI through host memory is not capturable)
  }
  if (algo == "dynamite" || algo == "varibad")
    return std::make_unique<BeliefLearner>(b, env, n, ppo, belief_config_of(c));
  if (algo == "rl2")
    return std::make_unique<Rl2Learner>(b, env, n, ppo, rl2_shape_of(c));
  if (algo == "ppo" || algo == "oracle") return std::make_unique<PpoLearner>(b, env, n, ppo, algo == "oracle");
  if (algo == "contrabar") return std::make_unique<ContrabarLearner>(b, env, n, ppo, contrabar_config_of(c));
  throw std::invalid_argument("make_learner: no learner for run.algo = '" + algo + "'");
}

std::unique_ptr<RolloutLearner> make_seed_batch_learner(const Config& c, Backend b, const std::vector<uint32_t>& seeds) {
  const std::string algo = c.get_string("run.algo");
  EnvConfig env = env_config_of(c);
  env.seed = seeds.at(0);
  const int64_t n = c.get_int("run.envs");
  const PpoConfig ppo = ppo_config_of(c);
  if (algo == "rl2") return std::make_unique<Rl2Learner>(b, env, n, ppo, rl2_shape_of(c), seeds);
  if (algo == "dynamite" || algo == "varibad")
    return std::make_unique<BeliefLearner>(b, env, n, ppo, belief_config_of(c), seeds);
  if (algo == "contrabar") return std::make_unique<ContrabarLearner>(b, env, n, ppo, contrabar_config_of(c), seeds);
  if (algo == "ppo" || algo == "oracle") return std::make_unique<PpoLearner>(b, env, n, ppo, algo == "oracle", seeds);
  throw std::invalid_argument("make_seed_batch_learner: no learner for run.algo = '" + algo + "'");
}

namespace {

// The evaluation envs' seed: the run's, offset so they never share the training envs' streams.
uint32_t eval_seed(const Config& cfg) { return uint32_t(cfg.get_int("run.seed")) + 1000003u; }

}  // namespace

EvalStats single_episode_evaluation(const Config& cfg, Learner& learner, EvalObserver* observer) {
  return learner.evaluate(cfg.get_int("train.eval_envs"), int(cfg.get_int("train.eval_episodes")), eval_seed(cfg),
                          EvalMode{false, observer});
}

EvalStats carried_evaluation(const Config& cfg, Learner& learner) {
  const int episodes = int(cfg.get_int("train.eval_carried_episodes"));
  if (episodes <= 0) return {};
  return learner.evaluate(cfg.get_int("train.eval_envs"), episodes, eval_seed(cfg), EvalMode{true, nullptr});
}

CheckpointEvaluation evaluate_checkpoint(const Config& cfg, Backend backend, const Checkpoint& c,
                                         const std::string& what, EvalObserver* observer) {
  // a data-parallel rank's checkpoint holds its share of the training envs (evaluation uses envs of its own)
  Config share = cfg;
  const auto ranks = c.metadata.find("ranks");
  if (ranks != c.metadata.end() && std::stoi(ranks->second) > 1)
    share.set_from_string("run.envs", std::to_string(cfg.get_int("run.envs") / std::stoi(ranks->second)),
                          what + " (one of " + ranks->second + " data-parallel ranks)");
  const std::unique_ptr<Learner> learner = make_learner(share, backend);
  restore_state(*learner, c, what);
  return {single_episode_evaluation(cfg, *learner, observer), carried_evaluation(cfg, *learner)};
}

nlohmann::json per_episode_json(const EvalStats& e) {
  nlohmann::json a = nlohmann::json::array();
  for (size_t k = 0; k < e.per_episode.size(); ++k) {
    const EvalStats& p = e.per_episode[k];
    a.push_back({{"episode", k + 1},
                 {"return", json_number(p.mean_return)},
                 {"ci95", json_number(p.ci95)},
                 {"episodes", p.episodes}});
  }
  return a;
}

std::string per_episode_line(const EvalStats& e, const char* what) {
  std::string line = what + std::string(":");
  char item[128];
  for (size_t k = 0; k < e.per_episode.size(); ++k) {
    std::snprintf(item, sizeof item, "%s episode %zu %.3f ± %.3f", k ? "," : "", k + 1, e.per_episode[k].mean_return,
                  e.per_episode[k].ci95);
    line += item;
  }
  return line + "\n";
}

void print_per_episode(const EvalStats& e, const char* what) { std::fputs(per_episode_line(e, what).c_str(), stdout); }

namespace {

// SIGINT / SIGTERM during training: the current iteration finishes, a checkpoint is written, the run exits 128 + n.
volatile std::sig_atomic_t g_stop_signal = 0;
void request_stop(int sig) { g_stop_signal = sig; }

// The driver's own state in a checkpoint's metadata, beside the learner's arrays.
struct DriverState {
  int64_t iteration = 0;
  double seconds = 0;  // training time before this process
  double last_train_return = std::nan("");
  int64_t jsonl_bytes = 0, csv_bytes = 0;  // the metrics files' lengths at the checkpoint
  int ranks = 1, rank = 0;                 // data parallel: each rank's checkpoint holds its share of the envs
};

Metadata driver_metadata(const Config& cfg, const DriverState& d) {
  char ret[64];
  std::snprintf(ret, sizeof ret, "%.17g", d.last_train_return);
  return {{"format", "dynamite_gpu checkpoint 1"},
          {"config", cfg.to_toml()},
          {"iteration", std::to_string(d.iteration)},
          {"seconds", std::to_string(d.seconds)},
          {"last_train_return", ret},
          {"metrics_jsonl_bytes", std::to_string(d.jsonl_bytes)},
          {"metrics_csv_bytes", std::to_string(d.csv_bytes)},
          {"ranks", std::to_string(d.ranks)},
          {"rank", std::to_string(d.rank)}};
}

DriverState driver_state_of(const Metadata& m, const std::string& what) {
  auto get = [&](const std::string& k) {
    const auto it = m.find(k);
    if (it == m.end()) throw std::runtime_error(what + ": no '" + k + "' in its metadata (not a run checkpoint?)");
    return it->second;
  };
  DriverState d;
  d.iteration = std::stoll(get("iteration"));
  d.seconds = std::stod(get("seconds"));
  d.last_train_return = std::strtod(get("last_train_return").c_str(), nullptr);
  d.jsonl_bytes = std::stoll(get("metrics_jsonl_bytes"));
  d.csv_bytes = std::stoll(get("metrics_csv_bytes"));
  if (m.count("ranks")) d.ranks = std::stoi(get("ranks"));  // absent before data parallel: one rank
  if (m.count("rank")) d.rank = std::stoi(get("rank"));
  return d;
}

// printf into a string (the end-of-run report is built whole, then printed at once: seed batches print from threads).
void appendf(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void appendf(std::string& out, const char* fmt, ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  out += buf;
}

// The checkpoint file of a data-parallel rank in its run directory: rank 0's is the run's checkpoint.safetensors
// (what --eval and the tools read), every other rank keeps its share of the envs beside it.
std::string checkpoint_file_of(int rank) {
  return rank == 0 ? kCheckpointFile : "checkpoint.rank" + std::to_string(rank) + ".safetensors";
}

// One training run, an iteration at a time: the run directory (new, or resumed from its checkpoint), one metrics
// row per iteration, evaluations, checkpoints, loud errors, and at the end the carried evaluation, summary.json and
// the report. A run alone drives it in a loop (run_training); a seed batch steps several in lock step.
// Data parallel (mpirun / srun, kernels/collective.h): every rank runs one, in lock step through the learners' sums;
// rank 0 alone creates the run directory, evaluates and writes the metrics, summary and report; every rank writes its
// own checkpoint file (its envs differ) at the same iterations; the ranks agree on stop signals, compare their
// parameters' hash every run.hash_interval iterations, and a failure on any rank ends them all with its message.
class TrainingRun {
 public:
  // label: "" for a run alone (it owns the terminal: a progress line, rewritten in place on a tty); in a seed batch,
  // "seed N: " before each of its messages, and no progress line of its own (the batch prints one for all).
  TrainingRun(const Config& cfg, Learner& learner, const std::string& device, const std::string& resume_dir,
              std::string label)
      : cfg_(cfg),
        learner_(learner),
        device_(Collective::world().distributed()
                    ? device + ", " + std::to_string(Collective::world().size()) + " data-parallel ranks"
                    : device),
        label_(std::move(label)),
        alone_(label_.empty()),
        tty_(alone_ && isatty(STDERR_FILENO)),
        env_(cfg.get_string("env.name")),
        algo_(variant_of(cfg)),
        budget_(cfg.get_int("train.frames")),
        eval_interval_(cfg.get_int("train.eval_interval")),
        checkpoint_interval_(cfg.get_int("train.checkpoint_interval")),
        ranks_(Collective::world()),
        writer_(ranks_.rank() == 0),
        hash_interval_(cfg.get_int("run.hash_interval")),
        dir_(open_run_directory(resume_dir)),
        checkpoint_path_((dir_ / checkpoint_file_of(ranks_.rank())).string()),
        jsonl_(writer_ ? LineFile((dir_ / "metrics.jsonl").string(), resume_dir.empty() ? -1 : driver_.jsonl_bytes)
                       : LineFile()),
        csv_(writer_ ? LineFile((dir_ / "metrics.csv").string(), resume_dir.empty() ? -1 : driver_.csv_bytes)
                     : LineFile()),
        t0_(std::chrono::steady_clock::now()),
        last_print_(t0_) {
    if (!writer_) return;
    std::fprintf(stderr, "%s%s %s with %s on %s, %lld envs, %lld frames -> %s\n", label_.c_str(),
                 resume_dir.empty() ? "training" : "resuming", env_.c_str(), algo_.c_str(), device_.c_str(),
                 (long long)cfg.get_int("run.envs"), (long long)budget_, dir_.c_str());
    if (!resume_dir.empty())
      std::fprintf(stderr, "%sfrom iteration %lld, %lld frames\n", label_.c_str(), (long long)driver_.iteration,
                   (long long)learner_.frames());
  }

  // One iteration with its metrics row, evaluation and checkpoint. False when the run is over: the budget reached
  // (status 0: call finish), a non-finite figure (1) or a stop signal (128 + signal, after a checkpoint).
  bool step() {
    if (learner_.frames() >= budget_) return false;
    int64_t& iteration = driver_.iteration;
    st_ = learner_.iterate();
    ++iteration;
    inject_nan(st_, iteration);
    inject_sigterm(iteration);
    const int stop = agreed_stop_signal();
    if (std::isfinite(st_.train_return)) driver_.last_train_return = st_.train_return;
    const bool final = learner_.frames() >= budget_;
    const bool eval_now = writer_ && (final || (eval_interval_ > 0 && iteration % eval_interval_ == 0));
    if (eval_now) {
      last_eval_ = single_episode_evaluation(cfg_, learner_, nullptr);
      have_eval_ = true;
    }
    const double secs = elapsed();
    const double fps = double(st_.frames) / secs;
    if (writer_) write_metrics(iteration, secs, fps, eval_now);

    // errors are loud: a non-finite loss, gradient or metric stops the run, with everything so far on disk and the
    // last good checkpoint kept
    const std::string bad = first_non_finite(st_, eval_now ? &last_eval_ : nullptr);
    if (!bad.empty()) {
      std::string message;
      appendf(message,
              "%serror: %s is not finite at iteration %lld (frames %lld); metrics so far are in %s; the last good "
              "checkpoint is %s (resume: dynamite_gpu --resume %s)",
              label_.c_str(), bad.c_str(), (long long)iteration, (long long)st_.frames, dir_.c_str(),
              fs::exists(checkpoint_path_) ? checkpoint_path_.c_str() : "not written yet", dir_.c_str());
      if (ranks_.distributed()) ranks_.abort(1, message);  // the other ranks would wait for this one forever
      std::fprintf(stderr, "%s%s\n", tty_ ? "\n" : "", message.c_str());
      status_ = 1;
      return false;
    }
    const bool checkpoint_now = final || stop || (checkpoint_interval_ > 0 && iteration % checkpoint_interval_ == 0);
    if (ranks_.distributed() && (checkpoint_now || (hash_interval_ > 0 && iteration % hash_interval_ == 0)))
      check_ranks_agree(iteration);
    if (checkpoint_now) checkpoint();
    if (stop) {
      const int sig = stop;
      if (writer_)
        std::fprintf(stderr,
                     "%s%sstopped by %s after iteration %lld (frames %lld); checkpoint %s\n%sresume: dynamite_gpu "
                     "--resume %s\n",
                     tty_ ? "\n" : "", label_.c_str(), sig == SIGINT ? "SIGINT" : "SIGTERM", (long long)iteration,
                     (long long)learner_.frames(), checkpoint_path_.c_str(), label_.c_str(), dir_.c_str());
      status_ = 128 + sig;
      return false;
    }
    if (alone_ && writer_) print_progress(fps, final);
    return !final;
  }

  // 0 while the run goes on and when it reached its budget; 1 when it failed; 128 + signal when stopped.
  int status() const { return status_; }
  // Only for the seed batch's progress line (read across threads).
  int64_t frames() const { return learner_.frames(); }

  // After the budget: Fig. 6's carried evaluation, summary.json, and the report the command prints (returned as
  // text, for the caller to print whole). Returns the summary.
  nlohmann::json finish(std::string& report) {
    if (tty_) std::fprintf(stderr, "\n");
    if (!writer_) return {};  // data parallel: rank 0 evaluates and reports
    // Fig. 6: consecutive episodes with the agent's state carried across them (not part of the run's time)
    const EvalStats carried = carried_evaluation(cfg_, learner_);
    const double secs = elapsed();
    nlohmann::json full = {{"env", env_},
                           {"algo", algo_},
                           {"seed", uint32_t(cfg_.get_int("run.seed"))},
                           {"device", device_},
                           {"envs", cfg_.get_int("run.envs")},
                           {"frames", learner_.frames()},
                           {"seconds", secs},
                           {"fps", double(learner_.frames()) / secs},
                           {"eval_return", last_eval_.mean_return},
                           {"eval_ci95", last_eval_.ci95},
                           {"eval_episodes", last_eval_.episodes}};
    for (const auto& [k, v] : last_eval_.extra) full[k] = json_number(v);
    for (const auto& [k, v] : st_.extra) full["last_" + k] = json_number(v);
    full["eval_per_episode"] = per_episode_json(last_eval_);
    // each eval env's return (its mean over train.eval_episodes): Fig. 8's rollouts
    nlohmann::json env_returns = nlohmann::json::array();
    for (const double r : last_eval_.env_returns) env_returns.push_back(json_number(r));
    full["eval_env_returns"] = env_returns;
    if (!carried.per_episode.empty()) full["eval_carried"] = per_episode_json(carried);
    write_file_atomically((dir_ / "summary.json").string(), full.dump(2) + "\n");

    appendf(report, "device: %s\n", device_.c_str());
    appendf(report, "trained %s on %s: %lld frames in %.1f s (%.0f frames/s)\n", algo_.c_str(), env_.c_str(),
            (long long)learner_.frames(), secs, double(learner_.frames()) / secs);
    appendf(report, "eval return: %.3f ± %.3f  (deterministic, mean ± 95%% CI over %lld episodes)\n",
            last_eval_.mean_return, last_eval_.ci95, (long long)last_eval_.episodes);
    for (const auto& [k, v] : last_eval_.extra) appendf(report, "%s: %.4f\n", k.c_str(), v);
    if (!carried.per_episode.empty()) report += per_episode_line(carried, "eval, state carried across episodes");
    for (const auto& [k, v] : st_.extra) appendf(report, "last iteration %s: %.4g\n", k.c_str(), v);
    appendf(report, "checkpoint: %s (%.2f MiB, written in %.3f s)\n", checkpoint_path_.c_str(),
            double(checkpoint_bytes_) / (1 << 20), checkpoint_s_);
    appendf(report, "run directory: %s\n", dir_.c_str());
    return full;
  }

 private:
  // A new run directory with the resolved config written first, or the resumed one with the learner at its
  // checkpoint (and driver_ at its state: the metrics files are cut back to what that checkpoint had written).
  fs::path open_run_directory(const std::string& resume_dir) {
    if (!resume_dir.empty()) {
      const std::string path = (fs::path(resume_dir) / checkpoint_file_of(ranks_.rank())).string();
      if (ranks_.rank() > 0 && !fs::exists(path))
        throw std::runtime_error("rank " + std::to_string(ranks_.rank()) + " has no checkpoint '" + path +
                                 "': resume a data-parallel run with as many ranks as wrote it");
      const Checkpoint c = read_checkpoint(path);
      driver_ = driver_state_of(c.metadata, "checkpoint '" + path + "'");
      if (driver_.ranks != ranks_.size())
        throw std::runtime_error("checkpoint '" + path + "' was written by " + std::to_string(driver_.ranks) +
                                 " data-parallel rank(s); resume it with as many (mpirun -np " +
                                 std::to_string(driver_.ranks) + "; this run has " + std::to_string(ranks_.size()) +
                                 ")");
      restore_state(learner_, c, "checkpoint '" + path + "'");
      if (!ranks_.same_on_all(uint64_t(driver_.iteration)))
        throw std::runtime_error("the ranks' checkpoints in '" + resume_dir +
                                 "' are from different iterations (a rank was stopped while writing); this rank's "
                                 "is from iteration " +
                                 std::to_string(driver_.iteration));
      return resume_dir;
    }
    if (!writer_) return fs::path(ranks_.broadcast(""));  // rank 0 names the new run directory
    fs::path dir = fs::path(cfg_.get_string("run.out_dir")) /
                   (env_ + "-" + algo_ + "-" + std::to_string(cfg_.get_int("run.seed")) + "-" + timestamp());
    // a fresh name, claimed by creating it (a seed batch creates several in the same second, from several threads)
    std::error_code made;
    fs::create_directories(dir.parent_path(), made);
    if (made) throw WriteError("cannot create the folder '" + dir.parent_path().string() + "': " + made.message());
    const fs::path base = dir;
    for (int k = 2; !fs::create_directory(dir, made); ++k) {
      if (made) throw WriteError("cannot create the run directory '" + dir.string() + "': " + made.message());
      dir = fs::path(base.string() + "-" + std::to_string(k));
    }
    write_file_atomically((dir / "config.toml").string(), cfg_.to_toml());
    return fs::path(ranks_.broadcast(dir.string()));
  }

  // A stop signal on any rank stops every rank after this iteration (each, at its own checkpoint).
  int agreed_stop_signal() const {
    const int mine = g_stop_signal;
    if (!ranks_.distributed()) return mine;
    double stops = mine ? 1.0 : 0.0;
    sum_over_ranks(Backend::cpu, &stops, 1);
    return mine ? mine : (stops > 0 ? SIGTERM : 0);
  }

  // Data parallel: the parameters, optimiser state and normalisers must be the same bits on every rank.
  void check_ranks_agree(int64_t iteration) {
    if (!ranks_.same_on_all(shared_state_hash(learner_)))
      ranks_.abort(1, "the data-parallel ranks' parameters differ at iteration " + std::to_string(iteration) +
                          " (a rank computed another update); the last checkpoint in " + dir_.string() +
                          " is from before");
  }

  double elapsed() const {
    return driver_.seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

  void checkpoint() {
    const auto c0 = std::chrono::steady_clock::now();
    if (writer_) {
      jsonl_.sync();
      csv_.sync();
    }
    DriverState d = driver_;
    d.ranks = ranks_.size();
    d.rank = ranks_.rank();
    d.seconds = elapsed();
    d.jsonl_bytes = jsonl_.size();
    d.csv_bytes = csv_.size();
    checkpoint_bytes_ = save_checkpoint(checkpoint_path_, learner_, driver_metadata(cfg_, d));
    checkpoint_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();
  }

  void write_metrics(int64_t iteration, double secs, double fps, bool eval_now) {
    const IterationStats& st = st_;
    nlohmann::json row = {{"iteration", iteration},
                          {"frames", st.frames},
                          {"seconds", secs},
                          {"fps", fps},
                          {"train_return", json_number(st.train_return)},
                          {"policy_loss", st.policy_loss},
                          {"value_loss", st.value_loss},
                          {"entropy", st.entropy},
                          {"approx_kl", st.approx_kl},
                          {"clip_fraction", st.clip_fraction},
                          {"grad_norm", st.grad_norm},
                          {"collect_s", st.collect_s},
                          {"advantages_s", st.advantages_s},
                          {"update_s", st.update_s},
                          {"lr", cfg_.get_real("train.lr")}};
    if (eval_now) {
      row["eval_return"] = last_eval_.mean_return;
      row["eval_ci95"] = last_eval_.ci95;
      for (const auto& [k, v] : last_eval_.extra) row[k] = json_number(v);
    }
    for (const auto& [k, v] : st.extra) row[k] = json_number(v);
    jsonl_.line(row.dump());
    if (iteration == 1) {  // the header, with the learner's own columns after the common ones
      std::string header =
          "iteration,frames,seconds,fps,train_return,eval_return,eval_ci95,policy_loss,value_loss,entropy,"
          "approx_kl,clip_fraction,grad_norm,lr";
      for (const auto& kv : st.extra) header += "," + kv.first;
      for (const std::string& name : learner_.eval_figure_names()) header += "," + name;
      csv_.line(header);
    }
    std::string csv_row;
    appendf(csv_row, "%lld,%lld,%.3f,%.1f,%.6g,%s,%s,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g", (long long)iteration,
            (long long)st.frames, secs, fps, st.train_return,
            eval_now ? std::to_string(last_eval_.mean_return).c_str() : "",
            eval_now ? std::to_string(last_eval_.ci95).c_str() : "", st.policy_loss, st.value_loss, st.entropy,
            st.approx_kl, st.clip_fraction, st.grad_norm, cfg_.get_real("train.lr"));
    for (const auto& kv : st.extra) csv_row += "," + std::to_string(kv.second);
    for (const std::string& name : learner_.eval_figure_names()) {  // the header's columns, empty between evaluations
      csv_row += ",";
      for (const auto& [k, v] : last_eval_.extra)
        if (eval_now && k == name) csv_row += std::to_string(v);
    }
    csv_.line(csv_row);
  }

  // progress: one line rewritten in place on a terminal; otherwise a line every 30 s and at the end
  void print_progress(double fps, bool final) {
    const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_print_).count();
    if (!(tty_ || since >= 30.0 || final)) return;
    const double eta = fps > 0 ? double(budget_ - st_.frames) / fps : 0;
    std::fprintf(stderr, "%s%lld/%lld frames  %.0f fps  train %.2f  eval %s  ETA %.0f s%s", tty_ ? "\r\033[K" : "",
                 (long long)st_.frames, (long long)budget_, fps, driver_.last_train_return,
                 have_eval_ ? std::to_string(last_eval_.mean_return).substr(0, 6).c_str() : "-", eta, tty_ ? "" : "\n");
    last_print_ = std::chrono::steady_clock::now();
  }

  const Config& cfg_;
  Learner& learner_;
  const std::string device_, label_;
  const bool alone_, tty_;
  const std::string env_, algo_;
  const int64_t budget_, eval_interval_, checkpoint_interval_;
  Collective& ranks_;
  const bool writer_;  // rank 0 (or the only rank): the run directory's files besides the other ranks' checkpoints
  const int64_t hash_interval_;
  DriverState driver_;  // before dir_: open_run_directory sets it when resuming
  const fs::path dir_;
  const std::string checkpoint_path_;
  LineFile jsonl_, csv_;
  const std::chrono::steady_clock::time_point t0_;
  std::chrono::steady_clock::time_point last_print_;
  IterationStats st_;
  EvalStats last_eval_;
  bool have_eval_ = false;
  int status_ = 0;
  size_t checkpoint_bytes_ = 0;
  double checkpoint_s_ = 0;
};

// SIGINT / SIGTERM during training: every run finishes its iteration, writes a checkpoint and exits 128 + n.
struct StopSignals {
  StopSignals() {
    g_stop_signal = 0;
    std::signal(SIGINT, request_stop);
    std::signal(SIGTERM, request_stop);
  }
  ~StopSignals() {
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
  }
};

int train_alone(const Config& cfg, Backend backend, const std::string& device, const std::string& out_path,
                const std::string& resume_dir) {
  const std::unique_ptr<Learner> learner = make_learner(cfg, backend);
  const StopSignals signals;
  TrainingRun run(cfg, *learner, device, resume_dir, "");
  while (run.step()) {
  }
  if (run.status() != 0) return run.status();
  std::string report;
  const nlohmann::json summary = run.finish(report);
  if (!out_path.empty() && !summary.is_null()) write_file_atomically(out_path, summary.dump(2) + "\n");
  std::fputs(report.c_str(), stdout);
  return 0;
}

// run.seeds: each seed's run in one process.
// - With run.seed_batch = batched (auto: on CUDA) every learner trains as one seed-batched learner
//   (make_seed_batch_learner: [S, P] parameters, one batched pass of each network over every run's rows,
//   algo/rollout_learner.h): one worker builds it and steps each run's TrainingRun, a SeedRunView of it, in lock
//   step, with every OpenMP thread. On the 2-core CPU it is slower than threads (bench/seeds, ppo gridworld S = 16:
//   47.6k against 75.8k frames/s), hence auto.
// - Else (threads) workers (host threads) each own a share of the seeds, build their learners and step them in
//   lock step; on the CPU min(S, OpenMP threads) workers with the threads shared out among them, on CUDA one worker
//   per seed, each with its own stream (kernels/backend.h), so the seeds' kernels overlap.
// A run's results do not depend on the batch (a CPU run is bit for bit the run alone with the same threads per
// run). The batch's progress is one line; each run's report follows, in seed order; the exit status is the worst
// run's (a stop signal's, else a failure's).
int train_seed_batch(const Config& cfg, const std::vector<uint32_t>& seeds, Backend backend, const std::string& device,
                     const std::string& out_path) {
  const int S = int(seeds.size());
  const int max_threads = omp_get_max_threads();
  const std::string algo = cfg.get_string("run.algo");
  const std::string mode = cfg.get_string("run.seed_batch");  // auto: batched on CUDA (bench/seeds: threads win on a CPU)
  const bool batched = mode == "batched" || (mode == "auto" && backend == Backend::cuda);
  const int workers = batched ? 1 : backend == Backend::cpu ? std::min(S, max_threads) : S;
  const int threads_per_worker = backend == Backend::cpu ? std::max(1, max_threads / workers) : 1;
  const std::string batch_device =
      batched ? (backend == Backend::cpu ? "cpu (" + std::to_string(threads_per_worker) + " thread" +
                                               (threads_per_worker > 1 ? "s" : "") + ", one seed batch)"
                                         : device + ", one seed batch")
      : backend == Backend::cpu ? "cpu (" + std::to_string(threads_per_worker) + " thread" +
                                      (threads_per_worker > 1 ? "s" : "") + " per run, " + std::to_string(workers) +
                                      " runs at once)"
                                : device + ", a stream per run";
  std::vector<Config> configs(S, cfg);
  for (int i = 0; i < S; ++i) {  // each run's config is what that seed alone would have written
    configs[i].set_from_string("run.seed", std::to_string(seeds[i]), "run.seeds");
    configs[i].set_from_string("run.seeds", "", "run.seeds");
  }
  struct Slot {
    std::unique_ptr<Learner> learner;
    std::unique_ptr<TrainingRun> run;
    std::atomic<int64_t> frames{0};
    std::atomic<bool> over{false};
    int status = 0;
    std::string report;
    nlohmann::json summary;
  };
  std::vector<Slot> slots(S);
  std::unique_ptr<RolloutLearner> batch;  // the seed-batched learner the runs' views share (batched)
  std::fprintf(stderr, "training %d seeds (%s) in one process on %s\n", S, cfg.get_string("run.seeds").c_str(),
               batch_device.c_str());
  const StopSignals signals;
  std::atomic<int> built{0};  // workers whose runs are built
  auto work = [&](int w) {
    omp_set_num_threads(threads_per_worker);
    std::vector<int> mine;
    for (int i = w; i < S; i += workers) mine.push_back(i);
    auto fail = [&](Slot& s, const std::exception& e) {
      s.status = 1;
      s.over = true;
      std::fprintf(stderr, "seed %u: error: %s\n", seeds[&s - slots.data()], e.what());
    };
    if (batched) try {
        batch = make_seed_batch_learner(configs[0], backend, seeds);
      } catch (const std::exception& e) {
        for (Slot& s : slots) fail(s, e);
      }
    for (const int i : mine) try {
        if (batched && !batch) continue;  // failed above
        slots[i].learner = batched ? std::make_unique<SeedRunView>(*batch, i) : make_learner(configs[i], backend);
        slots[i].run = std::make_unique<TrainingRun>(configs[i], *slots[i].learner, batch_device, "",
                                                     "seed " + std::to_string(seeds[i]) + ": ");
      } catch (const std::exception& e) {
        fail(slots[i], e);
      }
    // every run is built (its buffers allocated) before any steps: on CUDA a run's first iterations capture its
    // graphs, and no other thread should be allocating device memory meanwhile
    ++built;
    while (built.load() < workers) std::this_thread::yield();
    for (bool any = true; any;) {  // lock step: one iteration of each run still going, in turn
      any = false;
      for (const int i : mine) {
        Slot& s = slots[i];
        if (s.over) continue;
        try {
          const bool more = s.run->step();
          s.frames = s.run->frames();
          if (more) {
            any = true;
            continue;
          }
          s.status = s.run->status();
          if (s.status == 0) s.summary = s.run->finish(s.report);
          s.run.reset();  // the learner's memory goes back as each run ends
          s.learner.reset();
          s.over = true;
        } catch (const std::exception& e) {
          fail(s, e);
        }
      }
    }
    batch.reset();  // every run has ended (a batch has one worker)
  };
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) pool.emplace_back(work, w);

  // the batch's progress: one line for all runs, in place on a terminal, else every 30 s
  const bool tty = isatty(STDERR_FILENO);
  const auto t0 = std::chrono::steady_clock::now();
  auto last_print = t0;
  const int64_t budget = cfg.get_int("train.frames");
  auto all_over = [&] { return std::all_of(slots.begin(), slots.end(), [](const Slot& s) { return s.over.load(); }); };
  while (!all_over()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto now = std::chrono::steady_clock::now();
    if (!tty && std::chrono::duration<double>(now - last_print).count() < 30.0) continue;
    if (tty && std::chrono::duration<double>(now - last_print).count() < 1.0) continue;
    int64_t total = 0, least = budget;
    int going = 0;
    for (const Slot& s : slots) {
      total += s.frames;
      if (!s.over) ++going, least = std::min<int64_t>(least, s.frames);
    }
    const double secs = std::chrono::duration<double>(now - t0).count();
    std::fprintf(stderr, "%s%d of %d runs going, the slowest at %lld/%lld frames, %.0f frames/s in all%s",
                 tty ? "\r\033[K" : "", going, S, (long long)least, (long long)budget, double(total) / secs,
                 tty ? "" : "\n");
    last_print = now;
  }
  for (std::thread& t : pool) t.join();
  if (tty) std::fprintf(stderr, "\n");

  int status = 0;
  nlohmann::json summaries = nlohmann::json::array();
  for (int i = 0; i < S; ++i) {
    const Slot& s = slots[i];
    if (s.status == 0) {
      std::printf("seed %u:\n%s", seeds[i], s.report.c_str());
      summaries.push_back(s.summary);
    }
    if (s.status > 128 || (s.status != 0 && status <= 128)) status = std::max(status, s.status);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t frames = 0;
  for (const Slot& s : slots) frames += s.frames;
  std::printf("%d seeds in one process: %lld frames in %.1f s (%.0f frames/s in all); %zu finished\n", S,
              (long long)frames, secs, double(frames) / secs, summaries.size());
  // --out: the finished runs' summaries, one per seed (written whatever became of the others)
  if (!out_path.empty() && !summaries.empty()) write_file_atomically(out_path, summaries.dump(2) + "\n");
  return status;
}

}  // namespace

int run_training(const Config& cfg, Backend backend, const std::string& device, const std::string& out_path,
                 const std::string& resume_dir) {
  const std::vector<uint32_t> seeds = cfg.seeds();
  Collective& ranks = Collective::world();
  if (ranks.distributed()) {  // data parallel: one run over the ranks; a failure on any rank ends them all
    if (!seeds.empty())
      throw std::invalid_argument("run.seeds = \"" + cfg.get_string("run.seeds") + "\" with " +
                                  std::to_string(ranks.size()) +
                                  " data-parallel ranks: allowed one seed per data-parallel run (run.seeds = \"\")");
    int status = 0;
    try {
      status = train_alone(cfg, backend, device, out_path, resume_dir);
    } catch (const std::exception& e) {
      ranks.abort(1, std::string("error: ") + e.what());
    }
    return status;
  }
  if (seeds.empty()) return train_alone(cfg, backend, device, out_path, resume_dir);
  if (!resume_dir.empty())
    throw std::invalid_argument("run_training: a seed batch resumes run by run (each seed's --resume RUN_DIR)");
  return train_seed_batch(cfg, seeds, backend, device, out_path);
}

}  // namespace dyn
