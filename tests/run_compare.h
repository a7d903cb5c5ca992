// Comparing two training runs' directories (the checkpoint and seed-batch tests): metrics rows without the timing
// columns, and every array of two checkpoints byte for byte.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "host/checkpoint.h"

// A run's metrics rows without the columns that time it (seconds, fps, *_s).
inline std::vector<nlohmann::json> metrics_rows(const std::filesystem::path& run) {
  std::vector<nlohmann::json> rows;
  std::ifstream f(run / "metrics.jsonl");
  for (std::string line; std::getline(f, line);) {
    nlohmann::json j = nlohmann::json::parse(line), kept;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      if (k != "seconds" && k != "fps" && !(k.size() > 2 && k.substr(k.size() - 2) == "_s")) kept[k] = *it;
    }
    rows.push_back(kept);
  }
  return rows;
}

// Every array of two checkpoints equal, byte for byte; returns how many.
inline size_t expect_same_arrays(const std::filesystem::path& a, const std::filesystem::path& b) {
  const dyn::Checkpoint x = dyn::read_checkpoint(a.string()), y = dyn::read_checkpoint(b.string());
  EXPECT_EQ(x.arrays.size(), y.arrays.size());
  for (const auto& [name, arr] : x.arrays) {
    const auto it = y.arrays.find(name);
    if (it == y.arrays.end()) {
      ADD_FAILURE() << "missing " << name;
      continue;
    }
    EXPECT_TRUE(arr.bytes == it->second.bytes && arr.shape == it->second.shape) << name;
  }
  return x.arrays.size();
}
