// The dynamite_gpu command line: parses flags, builds and validates the config, runs, prints the summary.
#pragma once

namespace dyn {

// Returns the process exit status: 0 on success, 2 on bad input, 1 on a runtime failure.
int run_cli(int argc, char** argv);

}  // namespace dyn
