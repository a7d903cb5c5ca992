// Config schema, TOML loading, string overrides and validation.
#include "host/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "host/embedded_configs.h"

namespace dyn {

const std::vector<KeySpec>& config_schema() {
  static const std::vector<KeySpec> schema = {
      // env: what is simulated (SPEC §1–2)
      {"env.name",
       KeyKind::string,
       0,
       0,
       {"gridworld", "reacher", "halfcheetah_vel", "halfcheetah_dir", "halfcheetah_wind_vel", "scratch_itch"},
       "environment"},
      {"env.horizon", KeyKind::integer, 1, 65535, {}, "H, steps per episode"},
      {"env.sessions", KeyKind::integer, 1, 65535, {}, "K, sessions per episode (poisson, fixed); at most H"},
      {"env.session_model", KeyKind::string, 0, 0, {"poisson", "bernoulli", "fixed"}, "how session lengths are drawn"},
      {"env.switch_prob", KeyKind::real, 0, 1, {}, "per-step session switch probability (bernoulli)"},
      {"env.reset_on_switch", KeyKind::boolean, 0, 0, {}, "resample the state from nu_0 at each new session"},
      {"env.goal_stay_prob",
       KeyKind::real,
       0,
       1,
       {},
       "gridworld: P(rewarding goal unchanged at a new session)",
       {"gridworld"}},
      {"env.latent_phase",
       KeyKind::string,
       0,
       0,
       {"zero", "random"},
       "sinusoidal session schedules: i as written, or offset by U{0..31} per episode",
       {"reacher", "halfcheetah_vel", "halfcheetah_dir", "halfcheetah_wind_vel", "scratch_itch"}},
      {"env.dir_stay_prob",
       KeyKind::real,
       0,
       1,
       {},
       "halfcheetah_dir: P(direction unchanged at a new session)",
       {"halfcheetah_dir"}},
      {"env.wind_mode",
       KeyKind::string,
       0,
       0,
       {"force", "drift"},
       "halfcheetah_wind_vel: f_w as a force on the torso, or f_w·1e-3 m added to rootx per substep",
       {"halfcheetah_wind_vel"}},
      // run: how it is run
      {"run.envs", KeyKind::integer, 1, 67108864, {}, "parallel environments"},
      {"run.episodes", KeyKind::integer, 1, 1000000, {}, "episodes per environment"},
      {"run.seed", KeyKind::integer, 0, 4294967295.0, {}, "Philox seed"},
      {"run.seeds",
       KeyKind::string,
       0,
       0,
       {},
       "several seeds trained side by side in one process, each with its own run directory: a list such as 0-15 or "
       "0,3,7 (empty: run.seed alone)"},
      {"run.seed_batch",
       KeyKind::string,
       0,
       0,
       {"auto", "batched", "threads"},
       "how run.seeds trains: one learner over [S, P] parameters (batched), a learner per seed on host threads "
       "(threads), or batched on CUDA and threads on the CPU (auto)"},
      {"run.device", KeyKind::string, 0, 0, {"auto", "cpu", "cuda"}, "backend"},
      {"run.policy", KeyKind::string, 0, 0, {"random", "oracle"}, "scripted policy to roll out (run.algo = none)"},
      {"run.algo",
       KeyKind::string,
       0,
       0,
       {"none", "ppo", "oracle", "rl2", "dynamite", "varibad", "contrabar"},
       "learner to train (oracle: PPO that sees the current session's latent, the ceiling); none rolls out run.policy"},
      {"run.out_dir", KeyKind::string, 1, 0, {}, "where training run directories are created"},
      {"run.fused_kernels",
       KeyKind::boolean,
       0,
       0,
       {},
       "CUDA: fused MLP / GRU kernels where the shape fits (false: the GEMM path everywhere)"},
      {"run.cuda_graphs",
       KeyKind::boolean,
       0,
       0,
       {},
       "CUDA: replay each training stage as a captured CUDA Graph (false: launch eagerly, e.g. to profile)"},
      {"run.hash_interval",
       KeyKind::integer,
       0,
       1e9,
       {},
       "data parallel (mpirun / srun): iterations between checks that every rank holds the same parameters (0: at "
       "checkpoints only)"},
      // train: PPO (SPEC §4)
      {"train.frames", KeyKind::integer, 1, 1e12, {}, "env steps to train for, all envs together"},
      {"train.rollout_steps", KeyKind::integer, 1, 65535, {}, "steps per env per iteration"},
      {"train.epochs", KeyKind::integer, 1, 1000, {}, "PPO epochs per iteration"},
      {"train.minibatches", KeyKind::integer, 1, 65536, {}, "minibatches per epoch"},
      {"train.shuffle",
       KeyKind::string,
       0,
       0,
       {"global", "per_env"},
       "how an epoch is cut into minibatches: one shuffle of all samples (global), or each env's steps shuffled and "
       "every minibatch a slice of every env's (per_env; rl2: one env of every block of train.minibatches envs), "
       "which data-parallel ranks need"},
      {"train.lr", KeyKind::real, 1e-8, 1, {}, "Adam learning rate"},
      {"train.adam_eps", KeyKind::real, 1e-12, 1, {}, "Adam epsilon"},
      {"train.max_grad_norm", KeyKind::real, 0, 1e6, {}, "global gradient-norm clip (0: none)"},
      {"train.gamma", KeyKind::real, 0, 1, {}, "discount"},
      {"train.gae_lambda", KeyKind::real, 0, 1, {}, "GAE lambda"},
      {"train.clip", KeyKind::real, 0, 10, {}, "PPO ratio and value clip"},
      {"train.vf_coef", KeyKind::real, 0, 1e3, {}, "value loss weight"},
      {"train.entropy_coef", KeyKind::real, 0, 1e3, {}, "entropy bonus weight"},
      {"train.hidden", KeyKind::integer, 1, 4096, {}, "actor and critic hidden width (2 layers)"},
      {"train.eval_interval", KeyKind::integer, 0, 1e9, {}, "iterations between evaluations (0: only at the end)"},
      {"train.checkpoint_interval",
       KeyKind::integer,
       0,
       1e9,
       {},
       "iterations between checkpoints in the run directory (0: only at the end)"},
      {"train.eval_envs", KeyKind::integer, 1, 16777216, {}, "parallel envs for evaluation"},
      {"train.eval_episodes", KeyKind::integer, 1, 100000, {}, "evaluation episodes per eval env"},
      {"train.eval_carried_episodes",
       KeyKind::integer,
       0,
       100000,
       {},
       "at the end of a run: consecutive episodes per eval env with the agent's state carried across them (Fig. 6; "
       "0: none)"},
      // belief: the DynaMITE-RL / VariBAD belief model (SPEC §3)
      {"belief.consistency", KeyKind::boolean, 0, 0, {}, "dynamite: session-consistency loss (--no-consistency)"},
      {"belief.conditioning",
       KeyKind::boolean,
       0,
       0,
       {},
       "dynamite: condition the encoder and the session-start prior on the previous session's final belief "
       "(--no-conditioning)"},
      {"belief.session_recon",
       KeyKind::boolean,
       0,
       0,
       {},
       "dynamite: reconstruct only the ELBO index's session (--no-session-recon)"},
      {"belief.oracle_sessions",
       KeyKind::boolean,
       0,
       0,
       {},
       "dynamite: ground-truth session ends in rollouts and evaluation (--oracle-sessions)"},
      {"belief.beta", KeyKind::real, 0, 1e6, {}, "consistency weight"},
      {"belief.kl_weight", KeyKind::real, 0, 1e6, {}, "KL weight in the ELBO (summed over trajectories)"},
      {"belief.termination_weight", KeyKind::real, 0, 1e6, {}, "termination BCE weight"},
      {"belief.lr", KeyKind::real, 1e-8, 1, {}, "belief model Adam learning rate"},
      {"belief.latent", KeyKind::integer, 1, 256, {}, "latent dimension d"},
      {"belief.embed", KeyKind::integer, 1, 1024, {}, "s / a / r embedding width"},
      {"belief.hidden", KeyKind::integer, 1, 1024, {}, "encoder GRU width"},
      {"belief.trunk", KeyKind::integer, 1, 1024, {}, "encoder MLP width (2 layers)"},
      {"belief.normalize_obs",
       KeyKind::boolean,
       0,
       0,
       {},
       "the encoder and decoders see running-normalised observations"},
      {"belief.state_decoder",
       KeyKind::boolean,
       0,
       0,
       {},
       "also decode s_{t+1} (where the latent changes the dynamics: halfcheetah_wind_vel)"},
      {"belief.elbo_samples", KeyKind::integer, 0, 100000, {}, "ELBO indices per trajectory (0: all)"},
      {"belief.decode_samples", KeyKind::integer, 0, 100000, {}, "decoded transitions per ELBO index (0: all)"},
      {"belief.replay_episodes", KeyKind::integer, 1, 10000000, {}, "replay ring of recent whole episodes"},
      {"belief.batch_episodes", KeyKind::integer, 1, 100000, {}, "episodes per belief step"},
      {"belief.updates", KeyKind::integer, 0, 1000, {}, "belief steps after each PPO update"},
      // rl2: RL²'s recurrent policy
      {"rl2.embed", KeyKind::integer, 1, 4096, {}, "Linear + ReLU embedding of [s, a, r]"},
      {"rl2.hidden", KeyKind::integer, 1, 4096, {}, "GRU width"},
      // contrabar: ContraBAR's CPC encoder and its training (prior-art §3)
      {"contrabar.embed_s", KeyKind::integer, 1, 1024, {}, "Linear + ELU embedding of s"},
      {"contrabar.embed_a", KeyKind::integer, 1, 1024, {}, "Linear + ELU embedding of the previous action"},
      {"contrabar.embed_r", KeyKind::integer, 1, 1024, {}, "Linear + ELU embedding of the previous reward"},
      {"contrabar.hidden", KeyKind::integer, 1, 4096, {}, "GRU width = the context the policy sees"},
      {"contrabar.lookahead", KeyKind::integer, 1, 1000, {}, "CPC steps ahead K"},
      {"contrabar.negatives", KeyKind::integer, 1, 1000, {}, "CPC negatives per anchor and step ahead"},
      {"contrabar.lr", KeyKind::real, 1e-8, 1, {}, "CPC Adam learning rate"},
      {"contrabar.lr_halve_after",
       KeyKind::integer,
       0,
       1e9,
       {},
       "CPC steps before the learning rate halves (0: never)"},
      {"contrabar.max_grad_norm", KeyKind::real, 0, 1e6, {}, "CPC gradient-norm clip (0: none)"},
      {"contrabar.normalize_obs", KeyKind::boolean, 0, 0, {}, "the encoder sees running-normalised observations"},
      {"contrabar.replay_episodes", KeyKind::integer, 2, 10000000, {}, "replay ring of recent whole episodes"},
      {"contrabar.batch_episodes",
       KeyKind::integer,
       2,
       100000,
       {},
       "trajectories per CPC step (negatives: the others)"},
      {"contrabar.updates", KeyKind::integer, 0, 1000, {}, "CPC steps after each PPO update"},
  };
  return schema;
}

const KeySpec* find_key(const std::string& key) {
  for (const KeySpec& s : config_schema())
    if (s.key == key) return &s;
  return nullptr;
}

namespace {

std::string fmt_num(double x) {
  std::ostringstream os;
  os.precision(12);
  os << x;
  return os.str();
}

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string known_keys() {
  std::vector<std::string> keys;
  for (const KeySpec& s : config_schema()) keys.push_back(s.key);
  return join(keys);
}

std::string show(const Config::Value& v) {
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v)) return fmt_num(*d);
  if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return "\"" + std::get<std::string>(v) + "\"";
}

const KeySpec& spec_or_throw(const std::string& key, const std::string& source) {
  const KeySpec* s = find_key(key);
  if (!s) throw ConfigError(source + ": unknown config key '" + key + "'; known keys: " + known_keys());
  return *s;
}

[[noreturn]] void bad_value(const KeySpec& s, const std::string& shown, const std::string& source) {
  throw ConfigError(source + ": invalid value " + shown + " for " + s.key + "; allowed: " + describe_allowed(s));
}

// Flattens a TOML table into (dotted key, node) pairs.
void flatten(const toml::table& t, const std::string& prefix,
             std::vector<std::pair<std::string, const toml::node*>>& out) {
  for (auto&& [k, node] : t) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const toml::table* sub = node.as_table())
      flatten(*sub, key, out);
    else
      out.emplace_back(key, &node);
  }
}

std::string toml_type(const toml::node& n) {
  std::ostringstream os;
  os << "of TOML type " << n.type();
  return os.str();
}

toml::table parse_toml(const std::string& text, const std::string& source) {
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << source << ": TOML parse error at line " << e.source().begin.line << ": " << e.description();
    throw ConfigError(os.str());
  }
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ConfigError("config file '" + path + "' not found or not readable (--config)");
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

}  // namespace

std::string describe_allowed(const KeySpec& s) {
  switch (s.kind) {
    case KeyKind::integer:
      return "an integer in [" + fmt_num(s.min) + ", " + fmt_num(s.max) + "]";
    case KeyKind::real:
      return "a number in [" + fmt_num(s.min) + ", " + fmt_num(s.max) + "]";
    case KeyKind::boolean:
      return "true or false";
    case KeyKind::string:
      if (!s.choices.empty()) return "one of " + join(s.choices);
      return s.min > 0 ? "a non-empty string" : "any string";
  }
  return "";
}

std::vector<std::string> Config::builtin_envs() {
  std::vector<std::string> names;
  for (const EmbeddedConfig& c : embedded_configs()) names.emplace_back(c.name);
  return names;
}

Config Config::builtin(const std::string& env) {
  for (const EmbeddedConfig& c : embedded_configs())
    if (env == c.name) {
      Config cfg;
      cfg.merge_toml(c.text, "built-in configs/" + env + ".toml");
      return cfg;
    }
  throw ConfigError("invalid value \"" + env + "\" for env.name (--env); allowed: one of " + join(builtin_envs()));
}

void Config::set(const KeySpec& s, Value v, const std::string& source) {
  // range and choice checks happen here so the message names the source of the bad value
  if (auto* i = std::get_if<int64_t>(&v)) {
    if (s.kind == KeyKind::real) v = double(*i);  // an integer is a fine real
  }
  if (s.kind == KeyKind::integer) {
    const int64_t x = std::get<int64_t>(v);
    if (double(x) < s.min || double(x) > s.max) bad_value(s, show(v), source);
  } else if (s.kind == KeyKind::real) {
    const double x = std::get<double>(v);
    if (!std::isfinite(x) || x < s.min || x > s.max) bad_value(s, show(v), source);
  } else if (s.kind == KeyKind::string) {
    const std::string& x = std::get<std::string>(v);
    bool ok = s.choices.empty() ? double(x.size()) >= s.min : false;  // no choices: any string at least min long
    for (const std::string& c : s.choices) ok = ok || c == x;
    if (!ok) bad_value(s, show(v), source);
  }
  values_[s.key] = Entry{std::move(v), source};
}

void Config::merge_toml(const std::string& text, const std::string& source) {
  const toml::table t = parse_toml(text, source);
  std::vector<std::pair<std::string, const toml::node*>> flat;
  flatten(t, "", flat);
  for (const auto& [key, node] : flat) {
    const KeySpec& s = spec_or_throw(key, source);
    switch (s.kind) {
      case KeyKind::integer:
        if (!node->is_integer()) bad_value(s, toml_type(*node), source);
        set(s, int64_t(*node->value<int64_t>()), source);
        break;
      case KeyKind::real:
        if (!node->is_number()) bad_value(s, toml_type(*node), source);
        set(s, *node->value<double>(), source);
        break;
      case KeyKind::boolean:
        if (!node->is_boolean()) bad_value(s, toml_type(*node), source);
        set(s, *node->value<bool>(), source);
        break;
      case KeyKind::string:
        if (!node->is_string()) bad_value(s, toml_type(*node), source);
        set(s, std::string(*node->value<std::string>()), source);
        break;
    }
  }
}

void Config::merge_file(const std::string& path) { merge_toml(read_file(path), "config file '" + path + "'"); }

std::string Config::peek_env_name(const std::string& path) {
  const toml::table t = parse_toml(read_file(path), "config file '" + path + "'");
  if (auto name = t["env"]["name"].value<std::string>()) return *name;
  return "";
}

void Config::set_from_string(const std::string& key, const std::string& value, const std::string& source) {
  const KeySpec& s = spec_or_throw(key, source);
  const std::string shown = "'" + value + "'";
  switch (s.kind) {
    case KeyKind::integer: {
      errno = 0;
      char* end = nullptr;
      const long long x = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || errno == ERANGE) bad_value(s, shown, source);
      set(s, int64_t(x), source);
      break;
    }
    case KeyKind::real: {
      errno = 0;
      char* end = nullptr;
      const double x = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || errno == ERANGE) bad_value(s, shown, source);
      set(s, x, source);
      break;
    }
    case KeyKind::boolean:
      if (value == "true" || value == "1")
        set(s, true, source);
      else if (value == "false" || value == "0")
        set(s, false, source);
      else
        bad_value(s, shown, source);
      break;
    case KeyKind::string:
      set(s, value, source);
      break;
  }
}

static bool key_applies(const KeySpec& s, const std::string& env) {
  if (s.envs.empty()) return true;
  for (const std::string& e : s.envs)
    if (e == env) return true;
  return false;
}

void Config::validate() const {
  if (!values_.count("env.name")) throw ConfigError("missing config key env.name (environment)");
  const std::string env = get_string("env.name");
  for (const KeySpec& s : config_schema()) {
    const bool applies = key_applies(s, env);
    if (applies && !values_.count(s.key))
      throw ConfigError("missing config key " + s.key + " (" + s.doc + "); allowed: " + describe_allowed(s));
    if (!applies && values_.count(s.key))
      throw ConfigError(entry(s.key).source + ": config key " + s.key + " does not apply to env.name = " + env +
                        "; it belongs to " + join(s.envs));
  }
  const bool physics = env != "gridworld";
  if (get_string("run.policy") == "oracle" && get_string("run.algo") == "none" && physics && env != "reacher" &&
      env != "scratch_itch")
    throw ConfigError("invalid value \"oracle\" for run.policy (from " + entry("run.policy").source +
                      "); allowed with env.name = " + env + ": random (no scripted oracle for the cheetah tasks)");
  const Entry& h = entry("env.horizon");
  const Entry& k = entry("env.sessions");
  if (get_int("env.sessions") > get_int("env.horizon"))
    throw ConfigError("invalid value " + show(k.value) + " for env.sessions (from " + k.source +
                      "); allowed: an integer in [1, env.horizon = " + show(h.value) + " (from " + h.source + ")]");
  const Entry& mbs = entry("train.minibatches");
  if (get_int("train.minibatches") > get_int("train.rollout_steps") * get_int("run.envs"))
    throw ConfigError("invalid value " + show(mbs.value) + " for train.minibatches (from " + mbs.source +
                      "); allowed: at most train.rollout_steps * run.envs = " +
                      std::to_string(get_int("train.rollout_steps") * get_int("run.envs")));
  if (get_string("run.algo") == "rl2" && get_int("run.envs") % get_int("train.minibatches") != 0)
    throw ConfigError("invalid value " + show(mbs.value) + " for train.minibatches (from " + mbs.source +
                      "); allowed with run.algo = rl2: a divisor of run.envs = " + std::to_string(get_int("run.envs")) +
                      " (minibatches are whole env sequences)");
  if (get_string("train.shuffle") == "per_env" && get_string("run.algo") != "rl2" &&
      get_int("train.minibatches") > get_int("train.rollout_steps"))
    throw ConfigError("invalid value " + show(mbs.value) + " for train.minibatches (from " + mbs.source +
                      "); allowed with train.shuffle = per_env: at most train.rollout_steps = " +
                      std::to_string(get_int("train.rollout_steps")) + " (every minibatch takes steps of every env)");
  const std::string algo = get_string("run.algo");
  const bool replays = algo == "dynamite" || algo == "varibad" || algo == "contrabar";  // whole-episode replay
  const std::string replay_section = algo == "contrabar" ? "contrabar" : "belief";
  if (replays) {
    const Entry& rs = entry("train.rollout_steps");
    const int64_t T = get_int("train.rollout_steps"), H = get_int("env.horizon");
    if (T % H != 0 && H % T != 0)
      throw ConfigError("invalid value " + show(rs.value) + " for train.rollout_steps (from " + rs.source +
                        "); allowed with run.algo = " + algo + ": a divisor or a multiple of env.horizon = " +
                        std::to_string(H) + " (whole episodes go to the episode replay)");
    const Entry& be = entry(replay_section + ".batch_episodes");
    if (get_int(replay_section + ".batch_episodes") > get_int(replay_section + ".replay_episodes"))
      throw ConfigError("invalid value " + show(be.value) + " for " + replay_section + ".batch_episodes (from " +
                        be.source + "); allowed: at most " + replay_section +
                        ".replay_episodes = " + std::to_string(get_int(replay_section + ".replay_episodes")));
  }
  if (algo != "none") {  // int32 sample indices and GEMM row counts (PPO's shuffles, the GRU over T × N)
    const int64_t T = get_int("train.rollout_steps"), N = get_int("run.envs");
    if (T * N > int64_t(INT32_MAX))
      throw ConfigError("train.rollout_steps * run.envs = " + std::to_string(T) + " * " + std::to_string(N) + " = " +
                        std::to_string(T * N) + " (from " + entry("train.rollout_steps").source + " and " +
                        entry("run.envs").source +
                        "); allowed: at most 2147483647 (a rollout's samples are indexed "
                        "by int32)");
  }
  if (replays) {  // the replay batch's encoder rows (H + 1) × B, an int GEMM size
    const int64_t H = get_int("env.horizon"), B = get_int(replay_section + ".batch_episodes");
    if ((H + 1) * B > int64_t(INT32_MAX))
      throw ConfigError("(env.horizon + 1) * " + replay_section + ".batch_episodes = " + std::to_string((H + 1) * B) +
                        " (from " + entry("env.horizon").source + " and " +
                        entry(replay_section + ".batch_episodes").source +
                        "); allowed: at most 2147483647 (the encoder's rows are indexed by int32)");
  }
  seeds();  // a bad run.seeds list throws here, before any work
  const Entry& e = entry("run.episodes");
  if (get_int("run.episodes") * get_int("env.horizon") > int64_t(UINT32_MAX))
    throw ConfigError("invalid value " + show(e.value) + " for run.episodes (from " + e.source +
                      "); allowed: run.episodes * env.horizon <= 4294967295 (the global step counter is 32-bit)");
}

namespace {

// run.seeds: comma-separated items, each a seed N or a range A-B (A <= B), every seed in [0, 4294967295], none twice,
// at most kMaxSeeds in all; throws ConfigError naming the key, the value, where it came from and the form allowed.
constexpr size_t kMaxSeeds = 4096;
std::vector<uint32_t> parse_seed_list(const std::string& text, const std::string& source) {
  auto bad = [&](const std::string& why) {
    throw ConfigError("invalid value '" + text + "' for run.seeds (from " + source + "): " + why +
                      "; allowed: seeds N or ranges A-B (A <= B), comma-separated, each in [0, 4294967295], none "
                      "twice, at most " +
                      std::to_string(kMaxSeeds) + " (e.g. 0-15 or 0,3,7)");
  };
  auto number = [&](const std::string& t) {
    if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos) bad("'" + t + "' is not a seed");
    if (t.size() > 10 || std::stoull(t) > UINT32_MAX) bad(t + " is past 4294967295");
    return uint32_t(std::stoull(t));
  };
  std::vector<uint32_t> seeds;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    const size_t dash = item.find('-');
    const uint32_t lo = number(item.substr(0, dash)),
                   hi = dash == std::string::npos ? lo : number(item.substr(dash + 1));
    if (hi < lo) bad("the range " + item + " runs backwards");
    if (uint64_t(hi) - lo + seeds.size() >= kMaxSeeds) bad("more than " + std::to_string(kMaxSeeds) + " seeds");
    for (uint64_t s = lo; s <= hi; ++s) {
      if (std::find(seeds.begin(), seeds.end(), uint32_t(s)) != seeds.end())
        bad(std::to_string(s) + " is listed twice");
      seeds.push_back(uint32_t(s));
    }
    start = comma + 1;
  }
  return seeds;
}

}  // namespace

std::vector<uint32_t> Config::seeds() const {
  const std::string& text = get_string("run.seeds");
  return text.empty() ? std::vector<uint32_t>{} : parse_seed_list(text, entry("run.seeds").source);
}

const Config::Entry& Config::entry(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw ConfigError("missing config key " + key);
  return it->second;
}

std::string Config::value_string(const std::string& key) const {
  const Value& v = entry(key).value;
  if (const std::string* str = std::get_if<std::string>(&v)) return *str;
  if (const bool* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (const int64_t* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  return fmt_num(std::get<double>(v));
}

int64_t Config::get_int(const std::string& key) const { return std::get<int64_t>(entry(key).value); }
double Config::get_real(const std::string& key) const { return std::get<double>(entry(key).value); }
bool Config::get_bool(const std::string& key) const { return std::get<bool>(entry(key).value); }
const std::string& Config::get_string(const std::string& key) const { return std::get<std::string>(entry(key).value); }

std::string Config::to_toml() const {
  toml::table root;
  for (const auto& [key, e] : values_) {
    const size_t dot = key.find('.');
    const std::string section = key.substr(0, dot), name = key.substr(dot + 1);
    if (!root.contains(section)) root.insert(section, toml::table{});
    toml::table& sub = *root[section].as_table();
    std::visit([&](const auto& v) { sub.insert_or_assign(name, v); }, e.value);
  }
  std::ostringstream os;
  os << root << "\n";
  return os.str();
}

}  // namespace dyn
