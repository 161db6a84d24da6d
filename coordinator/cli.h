// Argument parsing and dispatch of every gptqd command; main() only sets up MPI
// and logging around it, so tests can run commands without a process.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

namespace gptqd {

// args excludes the program name. Returns the exit code; InputError from a command
// is logged and gives 1; other errors propagate.
int run_cli(const std::vector<std::string>& args, MPI_Comm comm);

std::string usage();

}  // namespace gptqd
