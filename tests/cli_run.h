// Runs the dynamite_gpu binary (DYN_BIN) with arguments, stdout and stderr captured through files in a folder:
// the command-line tests, CPU and GPU.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "tests/slurp.h"

struct CliResult {
  int status;  // exit status, −1 when killed
  std::string out, err;
};

// `prefix` goes before the command in the shell line: environment variables, or "ulimit -f N; ".
inline CliResult run_cli(const std::string& args, const std::filesystem::path& dir, const std::string& prefix = "") {
  const std::filesystem::path out = dir / "stdout", err = dir / "stderr";
  const std::string cmd =
      "(" + prefix + std::string(DYN_BIN) + " " + args + ") >" + out.string() + " 2>" + err.string();
  const int raw = std::system(cmd.c_str());
  return CliResult{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
}
