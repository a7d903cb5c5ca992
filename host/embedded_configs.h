// The configs/*.toml files, compiled into the binary (generated source: build/generated/embedded_configs.cpp).
#pragma once

#include <vector>

namespace dyn {

struct EmbeddedConfig {
  const char* name;  // file stem, e.g. "gridworld"
  const char* text;  // TOML
};

const std::vector<EmbeddedConfig>& embedded_configs();

}  // namespace dyn
