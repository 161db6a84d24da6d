// What one rank runs for a job: its pipeline stage's blocks, for every run of the
// job, in order (DESIGN.md §3 steps 3-5). Results go into the shared checkpoint;
// complete blocks found there are not redone (resume).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "io/hf_model.h"
#include "io/job_config.h"
#include "kernels/backend.h"
#include "worker/bloom_dims.h"
#include "worker/transport.h"

namespace gptqd {

struct StageRole {
  int stage = 0, stages = 1;
  int64_t first_block = 0, end_block = 0;  // [first, end)
  int prev_rank = -1, next_rank = -1;      // -1: none (first / last stage)
};

// One row of the per-layer report.
struct LayerReport {
  int32_t run = 0;  // index into the job's runs
  int32_t block = 0;
  int32_t layer = 0;
  int64_t rows = 0, cols = 0;
  LayerStats stats;
  int32_t resumed = 0;  // 1 when read back from the checkpoint instead of computed
};

struct StageInputs {
  const JobConfig* job = nullptr;
  const HfModel* model = nullptr;
  BloomDims dims;
  StageRole role;
  const std::vector<int32_t>* calib_tokens = nullptr;  // [nsamples * seqlen]; read by stage 0
  int64_t micro_batch = 1;                            // sequences per forward call
};

// Runs the stage for every run of the job. Blocks until the stage is done.
std::vector<LayerReport> run_stage(Backend& be, Transport& tp, Checkpoint& ckpt, const StageInputs& in);

}  // namespace gptqd
