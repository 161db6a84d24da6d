// `gptqd plan CONFIG --ranks N [...]`: the layout of a job and its memory and time budget per
// rank, from the job file and the model's config.json alone (no weights, no tokenizer), so a
// 176B-parameter job can be sized on a laptop before a cluster allocation is requested.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/plan_estimate.h"

namespace gptqd {

struct PlanCmdOptions {
  std::string config_path;
  int ranks = 0;                    // --ranks (required, >= 1)
  int64_t stages = -1;              // --stages; -1: the job file's parallel.stages (0 = auto)
  std::string factorization;        // --factorization; empty: the job file's parallel.factorization
  std::string inputs;               // --inputs; empty: the job file's calibration.inputs
  std::string dtype;                // --dtype; empty: config.json's torch_dtype, else bf16
  std::string device_name = "gpu";  // --device, as given
  bool cpu = false;                 // --device cpu: the CPU backend (precision auto is exact there,
                                    // a distributed factorization is ScaLAPACK's); rates by flags,
                                    // as bench/cpu_rates measures them
  Machine machine;                  // --ranks-per-node (default min(ranks, 8)), --gpu-mem (default
                                    // 80GiB), --host-mem (default 1TiB per node), --tflops,
                                    // --link-gbs, --net-gbs, --disk-gbs
};

struct PlanReport {
  std::string text;    // what `gptqd plan` prints
  bool fits = true;    // every rank's device memory and every node's host memory fit
  std::string misfit;  // when !fits: one line naming the first rank or node that does not fit
};

// One entry of the plan's "modes" line: a calibration mode (concurrent: original or
// quantized_in_stage) with its one run at its best layout; `this_job` marks the job's own mode.
// The dense and the MoE plans print the same line.
std::string mode_entry(const std::string& inputs, bool first, const std::string& run, int stages,
                       int replicas, double gpu_hours, bool this_job);

// Reads the job file and <model.path>/config.json (nothing else) and lays the job out.
// Throws InputError for a bad file or a layout that cannot work.
PlanReport make_plan_report(const PlanCmdOptions& opt);

}  // namespace gptqd
