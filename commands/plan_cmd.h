// The `gptqd plan` command: its arguments and entry point; the report is make_plan_report
// (coordinator/plan_report.h).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/plan_report.h"

namespace gptqd {

class CommandLine;

// `gptqd plan CONFIG --ranks N [...]`, bound to *opt (commands/command_line.h).
CommandLine plan_command_line(PlanCmdOptions* opt);

// Parses the arguments after "plan". Sizes take B, KB/MB/GB/TB (powers of 1000) or K/M/G/T and
// KiB/MiB/GiB/TiB (powers of 1024), e.g. 80GiB. Throws HelpRequest for --help/-h, InputError
// naming the bad flag.
PlanCmdOptions parse_plan_args(const std::vector<std::string>& args);

// Parses a size as above into bytes; InputError naming `flag` when it is not one.
uint64_t parse_size(const std::string& flag, const std::string& text);

// The command: every rank computes, rank 0 prints. Exit code 0 when the layout fits,
// 1 for bad input or a layout that does not fit (one "error:" line says which rank).
int cmd_plan(const std::vector<std::string>& args, MPI_Comm comm);

}  // namespace gptqd
