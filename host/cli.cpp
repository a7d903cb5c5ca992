// The dynamite_gpu command line (CLI11): flags map onto config keys; every value goes through the same
// validation, so `--envs 0` and `--set run.envs=0` give the same message. Every output target is checked before any
// work (host/checked_io.h); --out is written atomically at the end. --resume and --eval start from a run's config.
#include "host/cli.h"

#include <omp.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "algo/scripted_rollout.h"
#include "host/checked_io.h"
#include "host/config.h"
#include "host/eval_trace.h"
#include "host/train.h"
#include "kernels/backend.h"
#include "kernels/collective.h"

namespace dyn {

namespace {

constexpr int kExitBadInput = 2;
constexpr int kExitFailure = 1;

struct FlagKey {
  const char* flag;
  const char* key;
  const char* help;
};

// CLI flags that are shorthands for config keys.
const FlagKey kFlagKeys[] = {
    {"--envs", "run.envs", "parallel environments"},
    {"--episodes", "run.episodes", "episodes per environment"},
    {"--seed", "run.seed", "Philox seed, 0..4294967295"},
    {"--seeds", "run.seeds",
     "train several seeds side by side in one process, e.g. 0-15 or 0,3,7 (a run directory each)"},
    {"--device", "run.device", "auto | cpu | cuda"},
    {"--policy", "run.policy", "random | oracle (alone: roll the scripted policy out instead of training)"},
    {"--algo", "run.algo", "none | ppo | oracle | rl2 | dynamite | varibad | contrabar"},
    {"--frames", "train.frames", "training budget in env steps"},
};

// Ablation switches of `--algo dynamite` (SPEC §3): each sets a boolean config key.
struct SwitchKey {
  const char* flag;
  const char* key;
  const char* value;
  const char* help;
};
const SwitchKey kSwitchKeys[] = {
    {"--no-consistency", "belief.consistency", "false", "dynamite without the session-consistency loss"},
    {"--no-conditioning", "belief.conditioning", "false", "dynamite without latent belief conditioning"},
    {"--no-session-recon", "belief.session_recon", "false", "dynamite reconstructing whole episodes (VariBAD's ELBO)"},
    {"--oracle-sessions", "belief.oracle_sessions", "true",
     "ground-truth session ends instead of the termination head"},
};

// --eval: the checkpoint's policy evaluated as a run's evaluations are (single episodes, then episodes with the
// agent's state carried), printed (and written to --out); --trace records the single-episode evaluation's first envs.
constexpr int64_t kTraceEnvs = 4;

int evaluate(const Config& cfg, Backend backend, const std::string& device, const Checkpoint& c,
             const std::string& path, const std::string& out_path, const std::string& trace_path) {
  const int64_t traced = std::min<int64_t>(kTraceEnvs, cfg.get_int("train.eval_envs"));
  EvalTrace trace(backend, traced);
  const CheckpointEvaluation e =
      evaluate_checkpoint(cfg, backend, c, "checkpoint '" + path + "'", trace_path.empty() ? nullptr : &trace);
  std::printf("device: %s\n", device.c_str());
  std::printf("checkpoint: %s (%s on %s, seed %lld)\n", path.c_str(), cfg.get_string("run.algo").c_str(),
              cfg.get_string("env.name").c_str(), (long long)cfg.get_int("run.seed"));
  std::printf("eval return: %.3f ± %.3f  (deterministic, mean ± 95%% CI over %lld episodes)\n", e.single.mean_return,
              e.single.ci95, (long long)e.single.episodes);
  for (const auto& [k, v] : e.single.extra) std::printf("%s: %.4f\n", k.c_str(), v);
  if (!e.carried.per_episode.empty()) print_per_episode(e.carried, "eval, state carried across episodes");
  if (!trace_path.empty()) {
    write_file_atomically(trace_path, trace.jsonl());
    std::printf("trace: %s (%lld records: %lld envs x %lld steps)\n", trace_path.c_str(), (long long)trace.records(),
                (long long)traced, (long long)(trace.records() / traced));
  }
  if (!out_path.empty()) {
    nlohmann::json j = {{"checkpoint", path},
                        {"env", cfg.get_string("env.name")},
                        {"algo", cfg.get_string("run.algo")},
                        {"seed", cfg.get_int("run.seed")},
                        {"device", device},
                        {"eval_return", e.single.mean_return},
                        {"eval_ci95", e.single.ci95},
                        {"eval_episodes", e.single.episodes},
                        {"eval_per_episode", per_episode_json(e.single)}};
    if (!e.carried.per_episode.empty()) j["eval_carried"] = per_episode_json(e.carried);
    for (const auto& [k, v] : e.single.extra) j[k] = v;
    write_file_atomically(out_path, j.dump(2) + "\n");
  }
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  // a write past a file-size limit (RLIMIT_FSIZE) fails with EFBIG and is reported, instead of killing the process
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"dynamite_gpu: DLCMDP environments and meta-RL learners on the GPU (or the CPU)"};
  app.set_version_flag("--version", "dynamite_gpu 0.1.0");
  std::string env, config_path, out_path, resume_dir, eval_path, trace_path;
  std::vector<std::string> sets;
  bool print_config = false;
  std::string list_key;
  app.add_option(
      "--env", env, "environment (" + [] {
        std::string s;
        for (const std::string& e : Config::builtin_envs()) s += (s.empty() ? "" : ", ") + e;
        return s;
      }() + ")");
  std::string flag_values[std::size(kFlagKeys)];
  CLI::Option* flag_opts[std::size(kFlagKeys)];
  for (size_t i = 0; i < std::size(kFlagKeys); ++i)
    flag_opts[i] = app.add_option(kFlagKeys[i].flag, flag_values[i],
                                  std::string(kFlagKeys[i].help) + " (config key " + kFlagKeys[i].key + ")");
  app.add_option("--config", config_path, "TOML file merged over the env's built-in config (configs/<env>.toml)");
  app.add_option("--set", sets, "override any config key: --set env.horizon=30 (repeatable)")->take_all();
  app.add_option("--out", out_path, "write the summary as JSON to this file");
  app.add_option(
      "--resume", resume_dir,
      "continue the run in RUN_DIR from its checkpoint (its config; only --frames may change; --device auto is "
      "the run's device)");
  app.add_option("--eval", eval_path, "evaluate the policy in a checkpoint (RUN_DIR/checkpoint.safetensors)");
  app.add_option("--trace", trace_path,
                 "with --eval: write per-step records of the first 4 eval envs' episodes to this file (JSON Lines; "
                 "scripts/inspect draws them)");
  app.add_flag("--print-config", print_config, "print the resolved config as TOML and exit");
  app.add_option("--list-values", list_key,
                 "print the allowed values of a choice key, one per line, and exit (e.g. --list-values env.name)");
  bool switches[std::size(kSwitchKeys)] = {};
  for (size_t i = 0; i < std::size(kSwitchKeys); ++i)
    app.add_flag(kSwitchKeys[i].flag, switches[i],
                 std::string(kSwitchKeys[i].help) + " (" + kSwitchKeys[i].key + " = " + kSwitchKeys[i].value + ")");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << " (run with --help for usage)\n";
    return kExitBadInput;
  }

  if (!list_key.empty()) {  // for scripts: which envs, algos, policies there are
    const KeySpec* spec = find_key(list_key);
    if (!spec || spec->choices.empty()) {
      std::string choice_keys;
      for (const KeySpec& s : config_schema())
        if (!s.choices.empty()) choice_keys += (choice_keys.empty() ? "" : ", ") + s.key;
      std::cerr << "error: --list-values '" << list_key << "': not a choice key; allowed: " << choice_keys << "\n";
      return kExitBadInput;
    }
    for (const std::string& v : spec->choices) std::cout << v << "\n";
    return 0;
  }

  Config cfg;
  Checkpoint checkpoint;  // --eval's
  try {
    // 1. which env: --env, else env.name in --config
    std::string env_name = env;
    // a resumed run and an evaluated checkpoint start from their own config
    std::string saved_config, saved_source;
    Config saved;  // the run's resolved config, every key (config.toml or the checkpoint's metadata)
    if (!resume_dir.empty() || !eval_path.empty()) {
      if (!resume_dir.empty() && !eval_path.empty()) throw ConfigError("--resume and --eval: one or the other");
      if (!config_path.empty()) throw ConfigError("--config with --resume or --eval: the run's own config is used");
      if (!resume_dir.empty()) {
        saved_source = (std::filesystem::path(resume_dir) / "config.toml").string();
        check_input_file((std::filesystem::path(resume_dir) / kCheckpointFile).string(), "--resume");
        saved_config = read_file(saved_source, "--resume");
      } else {
        saved_source = "--eval " + eval_path;
        check_input_file(eval_path, "--eval");
        checkpoint = read_checkpoint(eval_path);
        const auto it = checkpoint.metadata.find("config");
        if (it == checkpoint.metadata.end())
          throw ConfigError("--eval '" + eval_path + "': no config in its metadata (not a dynamite_gpu checkpoint)");
        saved_config = it->second;
      }
      saved.merge_toml(saved_config, saved_source);
      if (env_name.empty()) env_name = saved.get_string("env.name");
    }
    if (!config_path.empty()) check_input_file(config_path, "--config");
    if (env_name.empty() && !config_path.empty()) env_name = Config::peek_env_name(config_path);
    if (env_name.empty()) {
      std::string all;
      for (const std::string& e : Config::builtin_envs()) all += (all.empty() ? "" : ", ") + e;
      throw ConfigError("--env is required (or env.name in --config); allowed: one of " + all);
    }
    // 2. built-in config, 3. --config, 4. flags, 5. --set
    cfg = Config::builtin(env_name);
    if (!config_path.empty()) cfg.merge_file(config_path);
    if (!saved_config.empty()) cfg.merge_toml(saved_config, saved_source);
    if (!env.empty()) cfg.set_from_string("env.name", env, "--env");
    for (size_t i = 0; i < std::size(kFlagKeys); ++i)
      if (flag_opts[i]->count()) cfg.set_from_string(kFlagKeys[i].key, flag_values[i], kFlagKeys[i].flag);
    // --policy without --algo rolls the scripted policy out (run.algo defaults to a learner)
    if (app.count("--policy") && !app.count("--algo")) cfg.set_from_string("run.algo", "none", "--policy");
    for (size_t i = 0; i < std::size(kSwitchKeys); ++i)
      if (switches[i]) cfg.set_from_string(kSwitchKeys[i].key, kSwitchKeys[i].value, kSwitchKeys[i].flag);
    for (const std::string& kv : sets) {
      const size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0)
        throw ConfigError("--set '" + kv + "': expected key=value, e.g. --set env.horizon=30");
      cfg.set_from_string(kv.substr(0, eq), kv.substr(eq + 1), "--set " + kv);
    }
    // --device auto on a resume is the run's own device (a campaign passes its --device to every run it resumes)
    if (!resume_dir.empty() && cfg.get_string("run.device") == "auto" && saved.has("run.device"))
      cfg.set_from_string("run.device", saved.value_string("run.device"), "--resume");
    cfg.validate();
    if (!resume_dir.empty()) {  // the same run: only the frame budget may change
      std::string differ;
      for (const std::string& k : cfg.keys()) {
        if (!saved.has(k)) {  // a key added since the run started: its default, said aloud
          std::cerr << "notice: --resume: " << k << " is not in the run's config (added since); using "
                    << cfg.value_string(k) << "\n";
          continue;
        }
        if (k != "train.frames" && saved.value_string(k) != cfg.value_string(k))
          differ += (differ.empty() ? "" : ", ") + k + " (run: " + saved.value_string(k) +
                    ", now: " + cfg.value_string(k) + ")";
      }
      if (!differ.empty())
        throw ConfigError("--resume " + resume_dir + ": the config differs from the run's in " + differ +
                          "; allowed: the run's config, with only train.frames (--frames) changed");
    }
    // a flag that does not apply to what runs is an error, not ignored
    const std::string algo = cfg.get_string("run.algo");
    for (size_t i = 0; i < std::size(kSwitchKeys); ++i)
      if (switches[i] && algo != "dynamite")
        throw ConfigError(std::string(kSwitchKeys[i].flag) + " applies to --algo dynamite only; run.algo = " + algo);
    if (app.count("--policy") && algo != "none")
      throw ConfigError("--policy rolls out a scripted policy and applies only without a learner; run.algo = " + algo +
                        " (drop --algo, or --algo none)");
    if (app.count("--episodes") && algo != "none")
      throw ConfigError("--episodes applies to scripted rollouts (run.algo = none); run.algo = " + algo +
                        " trains to --frames (evaluations: train.eval_episodes)");
    if (app.count("--frames") && algo == "none")
      throw ConfigError("--frames applies to training (--algo); run.algo = none rolls out --episodes per env");
    if (!cfg.get_string("run.seeds").empty()) {  // a seed batch: training, from the start, run.seed not set too
      const std::string& from = cfg.value_string("run.seeds");
      if (algo == "none")
        throw ConfigError("run.seeds = '" + from +
                          "' applies to training (--algo); run.algo = none rolls out one seed");
      if (!resume_dir.empty() || !eval_path.empty())
        throw ConfigError("run.seeds = '" + from +
                          "' with --resume or --eval: those take one run; allowed: each seed's run directory "
                          "(--resume RUN_DIR)");
      if (app.count("--seed"))
        throw ConfigError("--seed and run.seeds = '" + from + "': one or the other (run.seeds lists every seed)");
    }
    // every output target is checked before a run that may take hours
    if (!eval_path.empty() && algo == "none")
      throw ConfigError("--eval '" + eval_path + "': its config trains no learner (run.algo = none)");
    if (!trace_path.empty() && eval_path.empty())
      throw ConfigError("--trace '" + trace_path + "' applies to --eval CHECKPOINT only");
    if (!out_path.empty()) check_output_file(out_path, "--out");
    if (!trace_path.empty()) check_output_file(trace_path, "--trace");
    if (algo != "none" && resume_dir.empty() && eval_path.empty())
      prepare_output_folder(cfg.get_string("run.out_dir"), "run.out_dir");
  } catch (const TargetError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const ConfigError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::runtime_error& e) {  // --resume / --eval of something that is not a checkpoint
    std::cerr << "error: " << e.what() << "\n";
    return kExitBadInput;
  }

  if (print_config) {
    std::cout << cfg.to_toml();
    return 0;
  }

  try {
    std::string notice;
    Backend backend;
    try {
      backend = select_backend(cfg.get_string("run.device"), &notice);
    } catch (const BackendUnavailable& e) {
      std::cerr << "error: " << e.what() << "\n";
      return kExitBadInput;
    }
    if (!notice.empty() && Collective::world().rank() == 0)  // once per job, not once per data-parallel rank
      std::cerr << "notice: " << notice << "\n";
    set_fused_kernels(cfg.get_bool("run.fused_kernels"));

    const std::string device = backend == Backend::cuda ? "cuda: " + cuda_device_description()
                                                        : "cpu (" + std::to_string(omp_get_max_threads()) + " threads)";
    if (!eval_path.empty()) return evaluate(cfg, backend, device, checkpoint, eval_path, out_path, trace_path);
    if (cfg.get_string("run.algo") != "none") return run_training(cfg, backend, device, out_path, resume_dir);

    const int64_t n_envs = cfg.get_int("run.envs"), episodes = cfg.get_int("run.episodes");
    const std::string& policy_name = cfg.get_string("run.policy");
    const ScriptedPolicy policy = policy_name == "oracle" ? ScriptedPolicy::oracle : ScriptedPolicy::random;
    const uint32_t seed = uint32_t(cfg.get_int("run.seed"));

    const RolloutSummary s = run_scripted_rollout(backend, env_config_of(cfg), policy, n_envs, episodes);

    std::printf("device: %s\n", device.c_str());
    std::printf("env: %s  envs: %lld  policy: %s  seed: %u  episodes: %lld (%lld per env)\n",
                cfg.get_string("env.name").c_str(), (long long)n_envs, policy_name.c_str(), seed, (long long)s.episodes,
                (long long)episodes);
    std::printf("env steps/s: %.4g  (%lld steps in %.3f s, policy + step + statistics)\n", s.env_steps_per_s(),
                (long long)s.env_steps, s.seconds);
    std::printf("return: %.3f ± %.3f  (mean ± 95%% CI over %lld episodes; std %.3f)\n", s.mean_return, s.return_ci95,
                (long long)s.episodes, s.return_std);
    std::printf("sessions: %.3f per episode\n", s.mean_sessions);

    if (!out_path.empty()) {
      nlohmann::json j;
      j["device"] = device;
      j["env"] = cfg.get_string("env.name");
      j["policy"] = policy_name;
      j["envs"] = n_envs;
      j["seed"] = seed;
      j["episodes"] = s.episodes;
      j["env_steps"] = s.env_steps;
      j["seconds"] = s.seconds;
      j["env_steps_per_s"] = s.env_steps_per_s();
      j["mean_return"] = s.mean_return;
      j["return_ci95"] = s.return_ci95;
      j["return_std"] = s.return_std;
      j["mean_sessions"] = s.mean_sessions;
      j["config"] = cfg.to_toml();
      write_file_atomically(out_path, j.dump(2) + "\n");
    }
  } catch (const OutOfMemory& e) {
    std::fprintf(stderr,
                 "error: out of memory: %.1f MiB more on %s could not be allocated for --envs %lld (run.envs); "
                 "allowed: fewer envs (or a smaller train.rollout_steps / replay)\n",
                 double(e.bytes) / (1 << 20), backend_name(e.backend), (long long)cfg.get_int("run.envs"));
    return kExitBadInput;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr,
                 "error: out of memory while setting up --envs %lld (run.envs); allowed: fewer envs (or a smaller "
                 "train.rollout_steps / replay)\n",
                 (long long)cfg.get_int("run.envs"));
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  }
  return 0;
}

}  // namespace dyn
