// The `gptqd eval` command: its arguments and entry point; the work is run_eval
// (coordinator/eval_job.h).
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "coordinator/eval_job.h"

namespace gptqd {

class CommandLine;

// `gptqd eval CONFIG [--run NAME] [--threads N]`, bound to *opt (commands/command_line.h).
CommandLine eval_command_line(EvalOptions* opt);

// Parses the arguments after "eval". Throws HelpRequest for --help/-h, InputError naming the
// argument for bad ones (--threads: an integer in [0, 4096]).
EvalOptions parse_eval_args(const std::vector<std::string>& args);

// The CLI entry: parses args, runs, rank 0 prints the table.
int cmd_eval(const std::vector<std::string>& args, MPI_Comm comm);

}  // namespace gptqd
