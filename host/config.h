// Run configuration: a flat map of dotted keys ("env.horizon") checked against one schema. Values come, in
// order, from the env's built-in config (configs/<env>.toml), a user --config file, CLI flags, and --set
// key=value; every error names the key, the value, where it came from and what is allowed.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace dyn {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class KeyKind { integer, real, boolean, string };

struct KeySpec {
  std::string key;
  KeyKind kind;
  double min = 0, max = 0;           // integer / real: inclusive range; string without choices: min = shortest length
  std::vector<std::string> choices;  // string: allowed values
  std::string doc;
  std::vector<std::string> envs;  // the envs this key belongs to (empty: every env); required for those only
  KeySpec(std::string k, KeyKind kd, double lo, double hi, std::vector<std::string> ch, std::string d,
          std::vector<std::string> e = {})
      : key(std::move(k)), kind(kd), min(lo), max(hi), choices(std::move(ch)), doc(std::move(d)), envs(std::move(e)) {}
};

const std::vector<KeySpec>& config_schema();
const KeySpec* find_key(const std::string& key);
std::string describe_allowed(const KeySpec& spec);  // e.g. "an integer in [1, 65535]"

class Config {
 public:
  using Value = std::variant<int64_t, double, bool, std::string>;

  // Names of the built-in configs (configs/*.toml), i.e. the envs that can run.
  static std::vector<std::string> builtin_envs();
  // The built-in config of `env`; throws ConfigError naming the available envs.
  static Config builtin(const std::string& env);

  // Merges TOML text / a TOML file; `source` names it in messages.
  void merge_toml(const std::string& text, const std::string& source);
  void merge_file(const std::string& path);
  // Sets one key from its string form (CLI flags, --set); `source` is e.g. "--envs" or "--set".
  void set_from_string(const std::string& key, const std::string& value, const std::string& source);
  // Reads env.name from a TOML file without merging it ("" when absent).
  static std::string peek_env_name(const std::string& path);

  // Checks presence, ranges, choices and relations between keys.
  void validate() const;

  int64_t get_int(const std::string& key) const;
  double get_real(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  // Whether the key is set, and its value as text (numbers as TOML writes them, booleans true/false).
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  std::string value_string(const std::string& key) const;
  // Every key that is set.
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (const auto& [key, e] : values_) k.push_back(key);
    return k;
  }

  // The resolved config as TOML.
  std::string to_toml() const;

  // The seeds run.seeds lists, in order (empty when run.seeds is empty: run.seed alone); validate() checks the list.
  std::vector<uint32_t> seeds() const;

 private:
  struct Entry {
    Value value;
    std::string source;
  };
  const Entry& entry(const std::string& key) const;
  void set(const KeySpec& spec, Value v, const std::string& source);
  std::map<std::string, Entry> values_;
};

}  // namespace dyn
