// `gptqd export FILE [--run NAME] --out DIR [--format gptq|gptq_v2|compressed-tensors]
//  [--dtype float16|bfloat16|float32] [--for vllm] [--model DIR]` (io/export/gptq_export.h).
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "io/export/gptq_export.h"

namespace gptqd {

class CommandLine;

// The arguments of `gptqd export`, bound to *opt (commands/command_line.h).
CommandLine export_command_line(ExportOptions* opt);

// Parses the arguments after "export". Throws HelpRequest for --help/-h, InputError naming the
// argument for bad ones (--format, --dtype, --for: one of the listed values).
ExportOptions parse_export_args(const std::vector<std::string>& args);

int cmd_export(const std::vector<std::string>& args, MPI_Comm comm);

}  // namespace gptqd
