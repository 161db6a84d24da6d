// The `gptqd layer` command: its arguments and entry point; the work is quantize_layer_file
// (coordinator/layer_job.h).
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "coordinator/layer_job.h"

namespace gptqd {

class CommandLine;

// `gptqd layer --in L --out R --bits B --group-size G [...]`, bound to *opt
// (commands/command_line.h).
CommandLine layer_command_line(LayerOptions* opt);

// Parses the arguments after `layer`:
//   --in L --out R --bits B --group-size G [--sym] [--act-order]
//   [--static-groups] [--damp D] [--block-size S] [--mse-clip] [--threads T]
// B in {2, 3, 4, 8}; G = -1 or > 0; D in [0, 1) (0: no damping unless the
// factorization fails, then the retries start at 0.01); S > 0; T > 0;
// --static-groups needs G > 0. Throws HelpRequest for --help/-h, InputError
// naming the flag otherwise, for unknown or repeated flags and for missing
// values or required flags.
LayerOptions parse_layer_args(const std::vector<std::string>& args);

// Reads opt.in_path, quantizes, writes opt.out_path (atomically). Throws
// InputError naming the file and tensor for a missing tensor, a wrong rank or
// dtype, mismatched shapes, no tokens, or a non-finite value in weight, bias or
// inputs; gptqd::Error (naming the label) when the inputs overflow the fp32
// Hessian or the damping retries run out.
// The command: refuses more than one rank (InputError), logs errors and
// returns 1 for bad input, prints the summary and returns 0 on success.
int cmd_layer(const std::vector<std::string>& args, MPI_Comm comm);

}  // namespace gptqd
