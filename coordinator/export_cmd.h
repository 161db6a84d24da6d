// `gptqd export FILE [--run NAME] --out DIR [--format gptq] [--model DIR]`.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

namespace gptqd {

extern const char* const kExportUsage;

int cmd_export(const std::vector<std::string>& args, MPI_Comm comm);

}  // namespace gptqd
