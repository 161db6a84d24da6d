// `gptqd export FILE [--run NAME] --out DIR [--format gptq|gptq_v2|compressed-tensors]
//  [--dtype float16|bfloat16|float32] [--for vllm] [--model DIR]` (io/gptq_export.h).
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

namespace gptqd {

extern const char* const kExportUsage;

int cmd_export(const std::vector<std::string>& args, MPI_Comm comm);

}  // namespace gptqd
