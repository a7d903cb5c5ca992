// A whole text file as a string (empty when it cannot be read): the CLI and learning tests read logs and JSON.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
