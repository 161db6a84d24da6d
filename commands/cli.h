// The gptqd command line: the command list, `gptqd --help` and `--version`, and dispatch to each
// command; main() only sets up MPI and logging around it, so tests run commands without a
// process. Each command's arguments are defined once with CLI11 (commands/command_line.h).
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "coordinator/quantize_job.h"

namespace gptqd {

class CommandLine;

// args excludes the program name. Returns the exit code: 0, or 1 after one "error: " line for
// bad arguments (every rank, before any collective) or bad input; --help and -h (of gptqd or a
// command) and --version print on rank 0 and return 0. Errors after a job started propagate.
int run_cli(const std::vector<std::string>& args, MPI_Comm comm);

// What `gptqd --help` prints: one synopsis per command with its summary (README's Commands
// block is this text).
std::string usage();

// What `gptqd --version` prints: the version and the backends this build has.
std::string version_text();

// `gptqd quantize CONFIG [--restart] [--threads N]`.
CommandLine quantize_command_line(QuantizeOptions* opt);
QuantizeOptions parse_quantize_args(const std::vector<std::string>& args);

// `gptqd inspect FILE [--verify]`.
struct InspectOptions {
  std::string path;
  bool verify = false;  // read back every complete block and check it; exit 1 when damaged
};
CommandLine inspect_command_line(InspectOptions* opt);
InspectOptions parse_inspect_args(const std::vector<std::string>& args);

}  // namespace gptqd
