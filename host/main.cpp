// dynamite_gpu entry point.
#include "host/cli.h"

int main(int argc, char** argv) { return dyn::run_cli(argc, argv); }
