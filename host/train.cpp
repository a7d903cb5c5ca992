// Training driver: the loop, the run directory, metrics files and the progress line.
#include "host/train.h"

#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>

#include "algo/belief_learner.h"
#include "algo/ppo.h"
#include "algo/rl2.h"
#include "host/checked_io.h"
#include "host/checkpoint.h"
#include "host/config.h"

namespace dyn {

namespace {

namespace fs = std::filesystem;

}  // namespace

PpoConfig ppo_config_of(const Config& c) {
  PpoConfig p;
  p.rollout_steps = int(c.get_int("train.rollout_steps"));
  p.epochs = int(c.get_int("train.epochs"));
  p.minibatches = int(c.get_int("train.minibatches"));
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

int train_loop(const Config& cfg, Learner& learner, const std::string& device, const std::string& out_path,
               const std::string& resume_dir);

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

std::unique_ptr<Learner> make_learner(const Config& c, Backend b) {
  const EnvConfig env = env_config_of(c);
  const int64_t n = c.get_int("run.envs");
  const std::string algo = c.get_string("run.algo");
  const PpoConfig ppo = ppo_config_of(c);
  if (algo == "dynamite" || algo == "varibad")
    return std::make_unique<BeliefLearner>(b, env, n, ppo, belief_config_of(c));
  if (algo == "rl2")
    return std::make_unique<Rl2Learner>(b, env, n, ppo,
                                        Rl2Shape{int(c.get_int("rl2.embed")), int(c.get_int("rl2.hidden"))});
  if (algo == "ppo" || algo == "oracle") return std::make_unique<PpoLearner>(b, env, n, ppo, algo == "oracle");
  if (algo == "contrabar") return std::make_unique<ContrabarLearner>(b, env, n, ppo, contrabar_config_of(c));
  throw std::invalid_argument("make_learner: no learner for run.algo = '" + algo + "'");
}

int run_training(const Config& cfg, Backend backend, const std::string& device, const std::string& out_path,
                 const std::string& resume_dir) {
  const std::unique_ptr<Learner> learner = make_learner(cfg, backend);
  return train_loop(cfg, *learner, device, out_path, resume_dir);
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
  const std::unique_ptr<Learner> learner = make_learner(cfg, backend);
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

void print_per_episode(const EvalStats& e, const char* what) {
  std::printf("%s:", what);
  for (size_t k = 0; k < e.per_episode.size(); ++k)
    std::printf("%s episode %zu %.3f ± %.3f", k ? "," : "", k + 1, e.per_episode[k].mean_return, e.per_episode[k].ci95);
  std::printf("\n");
}

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
          {"metrics_csv_bytes", std::to_string(d.csv_bytes)}};
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
  return d;
}

int train_loop(const Config& cfg, Learner& ppo, const std::string& device, const std::string& out_path,
               const std::string& resume_dir) {
  const std::string env = cfg.get_string("env.name"), algo = variant_of(cfg);
  const uint32_t seed = uint32_t(cfg.get_int("run.seed"));
  const int64_t n_envs = cfg.get_int("run.envs"), budget = cfg.get_int("train.frames");
  const int64_t eval_interval = cfg.get_int("train.eval_interval");
  const int64_t checkpoint_interval = cfg.get_int("train.checkpoint_interval");

  // the run directory: a new one with the resolved config written first, or the resumed one with the learner at its
  // checkpoint and the metrics cut back to what that checkpoint had written
  fs::path dir;
  DriverState driver;
  if (resume_dir.empty()) {
    dir = fs::path(cfg.get_string("run.out_dir")) / (env + "-" + algo + "-" + std::to_string(seed) + "-" + timestamp());
    for (int k = 2; fs::exists(dir); ++k) dir = fs::path(dir.string() + "-" + std::to_string(k));
    std::error_code made;
    fs::create_directories(dir, made);
    if (made) throw WriteError("cannot create the run directory '" + dir.string() + "': " + made.message());
    write_file_atomically((dir / "config.toml").string(), cfg.to_toml());
  } else {
    dir = resume_dir;
    const std::string path = (dir / kCheckpointFile).string();
    const Checkpoint c = read_checkpoint(path);
    restore_state(ppo, c, "checkpoint '" + path + "'");
    driver = driver_state_of(c.metadata, "checkpoint '" + path + "'");
  }
  const std::string checkpoint_path = (dir / kCheckpointFile).string();
  LineFile jsonl((dir / "metrics.jsonl").string(), resume_dir.empty() ? -1 : driver.jsonl_bytes);
  LineFile csv((dir / "metrics.csv").string(), resume_dir.empty() ? -1 : driver.csv_bytes);
  std::vector<std::pair<std::string, double>> last_eval_extra;

  const bool tty = isatty(STDERR_FILENO);
  std::fprintf(stderr, "%s %s with %s on %s, %lld envs, %lld frames -> %s\n",
               resume_dir.empty() ? "training" : "resuming", env.c_str(), algo.c_str(), device.c_str(),
               (long long)n_envs, (long long)budget, dir.c_str());
  if (!resume_dir.empty())
    std::fprintf(stderr, "from iteration %lld, %lld frames\n", (long long)driver.iteration, (long long)ppo.frames());
  g_stop_signal = 0;
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  struct RestoreSignals {
    ~RestoreSignals() {
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
    }
  } restore_signals;

  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return driver.seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  size_t checkpoint_bytes = 0;
  double checkpoint_s = 0;
  auto checkpoint = [&] {
    const auto c0 = std::chrono::steady_clock::now();
    jsonl.sync();
    csv.sync();
    DriverState d = driver;
    d.seconds = elapsed();
    d.jsonl_bytes = jsonl.size();
    d.csv_bytes = csv.size();
    checkpoint_bytes = save_checkpoint(checkpoint_path, ppo, driver_metadata(cfg, d));
    checkpoint_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();
  };
  auto last_print = t0;
  EvalStats last_eval;
  bool have_eval = false;
  int64_t& iteration = driver.iteration;
  IterationStats st;
  double& last_train_return = driver.last_train_return;  // the progress line's: the last rollout with finished episodes
  while (ppo.frames() < budget) {
    st = ppo.iterate();
    ++iteration;
    inject_nan(st, iteration);
    inject_sigterm(iteration);
    if (std::isfinite(st.train_return)) last_train_return = st.train_return;
    const bool final = ppo.frames() >= budget;
    const bool eval_now = final || (eval_interval > 0 && iteration % eval_interval == 0);
    if (eval_now) {
      last_eval = single_episode_evaluation(cfg, ppo, nullptr);
      last_eval_extra = last_eval.extra;
      have_eval = true;
    }
    const double secs = elapsed();
    const double fps = double(st.frames) / secs;
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
                          {"lr", cfg.get_real("train.lr")}};
    if (eval_now) {
      row["eval_return"] = last_eval.mean_return;
      row["eval_ci95"] = last_eval.ci95;
      for (const auto& [k, v] : last_eval_extra) row[k] = json_number(v);
    }
    for (const auto& [k, v] : st.extra) row[k] = json_number(v);
    jsonl.line(row.dump());
    if (iteration == 1) {  // the header, with the learner's own columns after the common ones
      std::string header =
          "iteration,frames,seconds,fps,train_return,eval_return,eval_ci95,policy_loss,value_loss,entropy,"
          "approx_kl,clip_fraction,grad_norm,lr";
      for (const auto& kv : st.extra) header += "," + kv.first;
      for (const auto& kv : last_eval_extra) header += "," + kv.first;
      csv.line(header);
    }
    char line[512];
    std::snprintf(line, sizeof line, "%lld,%lld,%.3f,%.1f,%.6g,%s,%s,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g",
                  (long long)iteration, (long long)st.frames, secs, fps, st.train_return,
                  eval_now ? std::to_string(last_eval.mean_return).c_str() : "",
                  eval_now ? std::to_string(last_eval.ci95).c_str() : "", st.policy_loss, st.value_loss, st.entropy,
                  st.approx_kl, st.clip_fraction, st.grad_norm, cfg.get_real("train.lr"));
    std::string csv_row = line;
    for (const auto& kv : st.extra) csv_row += "," + std::to_string(kv.second);
    for (const auto& kv : last_eval_extra) csv_row += "," + (eval_now ? std::to_string(kv.second) : std::string());
    csv.line(csv_row);

    // errors are loud: a non-finite loss, gradient or metric stops the run, with everything so far on disk and the
    // last good checkpoint kept
    const std::string bad = first_non_finite(st, eval_now ? &last_eval : nullptr);
    if (!bad.empty()) {
      std::fprintf(stderr,
                   "%serror: %s is not finite at iteration %lld (frames %lld); metrics so far are in %s; the last "
                   "good checkpoint is %s (resume: dynamite_gpu --resume %s)\n",
                   tty ? "\n" : "", bad.c_str(), (long long)iteration, (long long)st.frames, dir.c_str(),
                   fs::exists(checkpoint_path) ? checkpoint_path.c_str() : "not written yet", dir.c_str());
      return 1;
    }
    if (final || g_stop_signal || (checkpoint_interval > 0 && iteration % checkpoint_interval == 0)) checkpoint();
    if (g_stop_signal) {
      const int sig = g_stop_signal;
      std::fprintf(
          stderr,
          "%sstopped by %s after iteration %lld (frames %lld); checkpoint %s\nresume: dynamite_gpu --resume %s\n",
          tty ? "\n" : "", sig == SIGINT ? "SIGINT" : "SIGTERM", (long long)iteration, (long long)ppo.frames(),
          checkpoint_path.c_str(), dir.c_str());
      return 128 + sig;
    }
    // progress: one line rewritten in place on a terminal; otherwise a line every 30 s and at the end
    const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_print).count();
    if (tty || since >= 30.0 || final) {
      const double eta = fps > 0 ? double(budget - st.frames) / fps : 0;
      std::fprintf(stderr, "%s%lld/%lld frames  %.0f fps  train %.2f  eval %s  ETA %.0f s%s", tty ? "\r\033[K" : "",
                   (long long)st.frames, (long long)budget, fps, last_train_return,
                   have_eval ? std::to_string(last_eval.mean_return).substr(0, 6).c_str() : "-", eta, tty ? "" : "\n");
      last_print = std::chrono::steady_clock::now();
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  // Fig. 6: consecutive episodes with the agent's state carried across them (not part of the run's time)
  const EvalStats carried = carried_evaluation(cfg, ppo);
  const double secs = elapsed();
  const nlohmann::json summary = {{"env", env},
                                  {"algo", algo},
                                  {"seed", seed},
                                  {"device", device},
                                  {"envs", n_envs},
                                  {"frames", ppo.frames()},
                                  {"seconds", secs},
                                  {"fps", double(ppo.frames()) / secs},
                                  {"eval_return", last_eval.mean_return},
                                  {"eval_ci95", last_eval.ci95},
                                  {"eval_episodes", last_eval.episodes}};
  nlohmann::json full = summary;
  for (const auto& [k, v] : last_eval_extra) full[k] = json_number(v);
  for (const auto& [k, v] : st.extra) full["last_" + k] = json_number(v);
  full["eval_per_episode"] = per_episode_json(last_eval);
  // each eval env's return (its mean over train.eval_episodes): Fig. 8's rollouts
  nlohmann::json env_returns = nlohmann::json::array();
  for (const double r : last_eval.env_returns) env_returns.push_back(json_number(r));
  full["eval_env_returns"] = env_returns;
  if (!carried.per_episode.empty()) full["eval_carried"] = per_episode_json(carried);
  write_file_atomically((dir / "summary.json").string(), full.dump(2) + "\n");
  if (!out_path.empty()) write_file_atomically(out_path, full.dump(2) + "\n");
  std::printf("device: %s\n", device.c_str());
  std::printf("trained %s on %s: %lld frames in %.1f s (%.0f frames/s)\n", algo.c_str(), env.c_str(),
              (long long)ppo.frames(), secs, double(ppo.frames()) / secs);
  std::printf("eval return: %.3f ± %.3f  (deterministic, mean ± 95%% CI over %lld episodes)\n", last_eval.mean_return,
              last_eval.ci95, (long long)last_eval.episodes);
  for (const auto& [k, v] : last_eval_extra) std::printf("%s: %.4f\n", k.c_str(), v);
  if (!carried.per_episode.empty()) print_per_episode(carried, "eval, state carried across episodes");
  for (const auto& [k, v] : st.extra) std::printf("last iteration %s: %.4g\n", k.c_str(), v);
  std::printf("checkpoint: %s (%.2f MiB, written in %.3f s)\n", checkpoint_path.c_str(),
              double(checkpoint_bytes) / (1 << 20), checkpoint_s);
  std::printf("run directory: %s\n", dir.c_str());
  return 0;
}

}  // namespace

}  // namespace dyn
