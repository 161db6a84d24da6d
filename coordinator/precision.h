// parallel.precision (docs/config-reference.md) resolved for the backend a rank computes on.
// quantize uses it; eval's forward stays exact (it measures the checkpoint, not the run).
#pragma once

#include <string>

#include "kernels/backend.h"

namespace gptqd {

// "exact" and "fast" as written; "auto": fast on a GPU (tensor cores), exact on the CPU (the
// reference arithmetic; fast is no faster there: its bf16 operands are emulated on the fp32
// BLAS, and a native bf16 GEMM measured slower than fp32 on a CPU with AVX512-BF16 and no AMX,
// docs/performance.md "bf16 on the CPU"). InputError for anything else (io/job/job_config.cpp
// has already refused it in a parsed job).
Precision resolve_precision(const std::string& setting, bool on_gpu);

}  // namespace gptqd
