// parallel.stall_timeout resolved for a job: how long a rank may go without progress before the
// job ends naming it (worker/transport/liveness.h).
#pragma once

#include <string>

#include "coordinator/plan_estimate.h"
#include "io/job/job_config.h"

namespace gptqd {

struct StallTimeout {
  double seconds = 0;
  std::string rule;  // where it comes from, for the log and the stall line
};

// parallel.stall_timeout when set. auto: kStallBlocks times the slowest block the plan
// predicts (its compute, its collectives and reading its weights; on the CPU backend the
// compute at kCpuStallTflops instead of the GPU rates the plan assumes), and at least
// kStallFloorSeconds. Progress is reported several times per block (each group's Hessian, each
// layer's GPTQ, the write), so the longest silence of a healthy rank is a fraction of a block.
StallTimeout stall_timeout_of(const JobConfig& job, const PlanEstimate& estimate, bool on_gpu);

// How many predicted blocks a rank may be silent for. The plan's rates are sustained rates of a
// dedicated GPU; a shared node, a slow file system or a cold page cache easily run a block
// several times slower.
constexpr double kStallBlocks = 10;
// Never less: the start of a job (CUDA and library initialisation, first touch of the model
// files) and small models whose blocks take milliseconds.
constexpr double kStallFloorSeconds = 600;
// The fp32 TFLOP/s assumed of one CPU rank: a conservative 10 GFLOP/s (one core of an AVX2
// machine sustains 50-100 GFLOP/s in SGEMM; GPTQ's sweep and the small GEMMs of a narrow model
// reach far less).
constexpr double kCpuStallTflops = 0.01;

}  // namespace gptqd
