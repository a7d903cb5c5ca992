// Training driver: the loop, the run directory, metrics files and the progress line.
#include "host/train.h"

#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "algo/ppo.h"
#include "algo/rl2.h"

namespace dyn {

namespace {

namespace fs = std::filesystem;

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
  return p;
}

std::string timestamp() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
  return buf;
}

double json_number(double x) { return std::isfinite(x) ? x : NAN; }

}  // namespace

GridParams grid_params_from_config(const Config& c) {
  GridParams p;
  const std::string& model = c.get_string("env.session_model");
  p.session.horizon = int(c.get_int("env.horizon"));
  p.session.sessions = int(c.get_int("env.sessions"));
  p.session.model = model == "poisson"     ? SessionModel::poisson
                    : model == "bernoulli" ? SessionModel::bernoulli
                                           : SessionModel::fixed;
  p.session.switch_prob = float(c.get_real("env.switch_prob"));
  p.session.reset_on_switch = c.get_bool("env.reset_on_switch");
  p.goal_stay_prob = float(c.get_real("env.goal_stay_prob"));
  p.seed = uint32_t(c.get_int("run.seed"));
  return p;
}

template <class Learner>
int train_loop(const Config& cfg, Learner& learner, const std::string& device);

int run_training(const Config& cfg, Backend backend, const std::string& device) {
  const GridParams env = grid_params_from_config(cfg);
  const int64_t n_envs = cfg.get_int("run.envs");
  if (cfg.get_string("run.algo") == "rl2") {
    GridRl2 learner(backend, env, n_envs, ppo_config_of(cfg));
    return train_loop(cfg, learner, device);
  }
  GridPpo learner(backend, env, n_envs, ppo_config_of(cfg));
  return train_loop(cfg, learner, device);
}

template <class Learner>
int train_loop(const Config& cfg, Learner& ppo, const std::string& device) {
  const std::string env = cfg.get_string("env.name"), algo = cfg.get_string("run.algo");
  const uint32_t seed = uint32_t(cfg.get_int("run.seed"));
  const int64_t n_envs = cfg.get_int("run.envs"), budget = cfg.get_int("train.frames");
  const int64_t eval_interval = cfg.get_int("train.eval_interval");
  const int64_t eval_envs = cfg.get_int("train.eval_envs");
  const int eval_episodes = int(cfg.get_int("train.eval_episodes"));

  // the run directory, with the resolved config written first
  fs::path dir =
      fs::path(cfg.get_string("run.out_dir")) / (env + "-" + algo + "-" + std::to_string(seed) + "-" + timestamp());
  for (int k = 2; fs::exists(dir); ++k) dir = fs::path(dir.string() + "-" + std::to_string(k));
  fs::create_directories(dir);
  std::ofstream(dir / "config.toml") << cfg.to_toml();
  std::ofstream jsonl(dir / "metrics.jsonl"), csv(dir / "metrics.csv");
  csv << "iteration,frames,seconds,fps,train_return,eval_return,eval_ci95,policy_loss,value_loss,entropy,approx_kl,"
         "clip_fraction,grad_norm,lr\n";

  const bool tty = isatty(STDERR_FILENO);
  std::fprintf(stderr, "training %s with %s on %s, %lld envs, %lld frames -> %s\n", env.c_str(), algo.c_str(),
               device.c_str(), (long long)n_envs, (long long)budget, dir.c_str());

  const auto t0 = std::chrono::steady_clock::now();
  auto last_print = t0;
  EvalStats last_eval;
  bool have_eval = false;
  int64_t iteration = 0;
  IterationStats st;
  while (ppo.frames() < budget) {
    st = ppo.iterate();
    ++iteration;
    const bool final = ppo.frames() >= budget;
    const bool eval_now = final || (eval_interval > 0 && iteration % eval_interval == 0);
    if (eval_now) {
      last_eval = ppo.evaluate(eval_envs, eval_episodes, seed + 1000003u);
      have_eval = true;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
    }
    jsonl << row.dump() << "\n" << std::flush;
    char line[512];
    std::snprintf(line, sizeof line, "%lld,%lld,%.3f,%.1f,%.6g,%s,%s,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n",
                  (long long)iteration, (long long)st.frames, secs, fps, st.train_return,
                  eval_now ? std::to_string(last_eval.mean_return).c_str() : "",
                  eval_now ? std::to_string(last_eval.ci95).c_str() : "", st.policy_loss, st.value_loss, st.entropy,
                  st.approx_kl, st.clip_fraction, st.grad_norm, cfg.get_real("train.lr"));
    csv << line << std::flush;

    // errors are loud: a non-finite loss or gradient stops the run, with everything so far on disk
    if (!std::isfinite(st.policy_loss) || !std::isfinite(st.value_loss) || !std::isfinite(st.grad_norm)) {
      std::fprintf(stderr,
                   "%serror: non-finite loss or gradient at iteration %lld (frames %lld): policy %g, value %g, "
                   "grad norm %g; metrics so far are in %s\n",
                   tty ? "\n" : "", (long long)iteration, (long long)st.frames, st.policy_loss, st.value_loss,
                   st.grad_norm, dir.c_str());
      return 1;
    }
    // progress: one line rewritten in place on a terminal; otherwise a line every 30 s and at the end
    const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_print).count();
    if (tty || since >= 30.0 || final) {
      const double eta = fps > 0 ? double(budget - st.frames) / fps : 0;
      std::fprintf(stderr, "%s%lld/%lld frames  %.0f fps  train %.2f  eval %s  ETA %.0f s%s", tty ? "\r\033[K" : "",
                   (long long)st.frames, (long long)budget, fps, st.train_return,
                   have_eval ? std::to_string(last_eval.mean_return).substr(0, 6).c_str() : "-", eta, tty ? "" : "\n");
      last_print = std::chrono::steady_clock::now();
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
  std::ofstream(dir / "summary.json") << summary.dump(2) << "\n";
  std::printf("device: %s\n", device.c_str());
  std::printf("trained %s on %s: %lld frames in %.1f s (%.0f frames/s)\n", algo.c_str(), env.c_str(),
              (long long)ppo.frames(), secs, double(ppo.frames()) / secs);
  std::printf("eval return: %.3f ± %.3f  (deterministic, mean ± 95%% CI over %lld episodes)\n", last_eval.mean_return,
              last_eval.ci95, (long long)last_eval.episodes);
  std::printf("run directory: %s\n", dir.c_str());
  return 0;
}

}  // namespace dyn
