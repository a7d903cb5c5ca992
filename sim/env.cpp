// The env registry: every environment by name, and the option getters of EnvConfig.
#include "sim/env.h"

#include <stdexcept>
#include <string>

#include "sim/gridworld.h"
#include "sim/physics_env.h"
#include "sim/scratch_itch.h"

namespace dyn {

namespace {

std::unique_ptr<BatchEnv> make_gridworld(Backend b, const EnvConfig& cfg, int64_t n) {
  return std::make_unique<GridBatchEnv>(b, grid_params(cfg), n);
}

std::unique_ptr<BatchEnv> make_physics(Backend b, const EnvConfig& cfg, int64_t n) {
  return std::make_unique<PhysicsBatchEnv>(b, physics_env_params(cfg), n);
}

std::unique_ptr<BatchEnv> make_scratch_itch(Backend b, const EnvConfig& cfg, int64_t n) {
  return std::make_unique<ScratchBatchEnv>(b, scratch_params(cfg), n);
}

}  // namespace

double EnvConfig::option(const std::string& key, double fallback) const {
  auto it = options.find(key);
  if (it == options.end()) return fallback;
  size_t used = 0;
  const double v = std::stod(it->second, &used);
  if (used != it->second.size())
    throw std::invalid_argument("env option " + key + " = '" + it->second + "' is not a number");
  return v;
}

std::string EnvConfig::option(const std::string& key, const std::string& fallback) const {
  auto it = options.find(key);
  return it == options.end() ? fallback : it->second;
}

const std::vector<std::pair<std::string, EnvFactory>>& env_registry() {
  static const std::vector<std::pair<std::string, EnvFactory>> all = {
      {"gridworld", make_gridworld},          {"reacher", make_physics},
      {"halfcheetah_vel", make_physics},      {"halfcheetah_dir", make_physics},
      {"halfcheetah_wind_vel", make_physics}, {"scratch_itch", make_scratch_itch},
  };
  return all;
}

EnvConfig default_env_config(const std::string& name, uint32_t seed) {
  EnvConfig c;
  c.name = name;
  c.seed = seed;
  if (name != "gridworld") {
    c.session.horizon = name == "scratch_itch" ? 200 : 400;
    c.session.reset_on_switch = false;
  }
  return c;
}

void BatchEnv::set_runs(const std::vector<uint32_t>& seeds) {
  const int64_t S = int64_t(seeds.size());
  if (S < 1 || n_ % S != 0)
    throw std::invalid_argument(spec_.name + ": " + std::to_string(n_) + " envs do not split into " +
                                std::to_string(S) + " runs of a seed batch");
  if (seeds[0] != seed_)
    throw std::invalid_argument(spec_.name + ": a seed batch's first seed (" + std::to_string(seeds[0]) +
                                ") is not the env's own (" + std::to_string(seed_) + ")");
  runs_ = int(S);
  run_seeds_.assign(b_, S > 1 ? seeds : std::vector<uint32_t>{});
}

std::unique_ptr<BatchEnv> make_batch_env(Backend b, const EnvConfig& cfg, int64_t n,
                                         const std::vector<uint32_t>& seeds) {
  std::string known;
  for (const auto& [name, make] : env_registry()) {
    if (name == cfg.name) {
      std::unique_ptr<BatchEnv> env = make(b, cfg, n * int64_t(seeds.size() > 1 ? seeds.size() : 1));
      env->set_first_env(cfg.first_env);
      if (seeds.size() > 1) env->set_runs(seeds);
      return env;
    }
    known += (known.empty() ? "" : ", ") + name;
  }
  throw std::invalid_argument("unknown env '" + cfg.name + "'; known: " + known);
}

}  // namespace dyn
