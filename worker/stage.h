// What one rank runs for a job: its pipeline stage's blocks, for every run of the
// job, in order (DESIGN.md §3 steps 3-5), as one of the stage's replicas. Results go into
// the shared checkpoint; complete blocks found there are not redone (resume).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint.h"
#include "io/job/job_config.h"
#include "io/model/hf_model.h"
#include "io/model/model_spec.h"
#include "kernels/backend.h"
#include "worker/block_quantizer.h"
#include "worker/gptq.h"
#include "worker/transport/transport.h"

namespace gptqd {

struct StageRole {
  int stage = 0, stages = 1;
  int replica = 0, replicas = 1;           // this rank's place among the stage's replicas
  int64_t first_block = 0, end_block = 0;  // [first, end)
  // The same replica of the previous / next stage (it holds the same samples); -1: none.
  int prev_rank = -1, next_rank = -1;
};

// One row of the per-layer report.
struct LayerReport {
  int32_t run = 0;  // index into the job's runs
  int32_t block = 0;
  int32_t layer = 0;
  int64_t rows = 0, cols = 0;
  LayerStats stats;
  int32_t resumed = 0;  // 1 when read back from the checkpoint instead of computed
  int64_t tokens = -1;  // a routed expert's calibration tokens (all replicas); -1 otherwise
};

struct StageInputs {
  const JobConfig* job = nullptr;
  const HfModel* model = nullptr;
  ModelSpec dims;
  StageRole role;
  // The stage's replicas (size role.replicas, rank role.replica); null when there is one.
  ReplicaGroup* group = nullptr;
  // Over the same replicas, for parallel.factorization: distributed; null: replicated (and
  // always with one replica, where both are the same computation).
  HostFactorizer* factorizer = nullptr;
  // parallel.experts: sharded (ReplicaContext::shard_experts).
  bool shard_experts = false;
  const std::vector<int32_t>* calib_tokens = nullptr;  // [nsamples * seqlen]; read by stage 0
  int64_t micro_batch = 1;                             // sequences per forward call
  // Micro-batches in flight between two stages (sends posted, receives posted ahead): the
  // bound on what streaming buffers, in units of one micro-batch. >= 1.
  int stream_window = 2;
  // Keep the activations in the backend's (pinned) host memory instead of on the device
  // (parallel.activations, resolved by the caller with worker/memory_model.h).
  bool activations_on_host = false;
  // How a true-sequential block is traversed (parallel.sequential_passes, resolved by the
  // caller with worker/memory_model.h): once, or in partial passes when the kept state does
  // not fit.
  SequentialPasses sequential = SequentialPasses::kOne;
};

// Runs the stage for every run of the job. Blocks until the stage is done. Collective over
// the stage's replicas; exchanges activations with the neighbouring stages. Replica r holds
// samples share_of(nsamples, r, replicas) (worker/block_quantizer.h) and quantizes the rows
// share_of(rows, r, replicas) of every layer (all rows of the routed experts it owns and none of
// the others' when experts are sharded); replica 0 writes the layer stats, marks blocks
// complete (after every replica's rows are written and synced) and returns the reports
// (the other replicas return none).
std::vector<LayerReport> run_stage(Backend& be, Transport& tp, Checkpoint& ckpt,
                                   const StageInputs& in);

// Test hooks (with GPTQD_TEST_STOP_IN_SUM in worker/transport/transport_mpi.cpp, the only ones
// in gptqd). test_hook_after_mark (tests/mpi/distributed_kill.sh): called by the rank that has
// just marked `block` complete. GPTQD_TEST_KILL_AT_BLOCK=b makes it raise SIGKILL when
// block == b (a node failure right after a commit); GPTQD_TEST_THROW_AT_BLOCK=b makes it throw
// gptqd::Error (a rank failing with a message). test_hook_before_block
// (tests/mpi/stall_timeout.sh): called by a stage's first replica as it starts `block`, once
// it has reported "reading its weights"; GPTQD_TEST_STOP_AT_BLOCK=b makes it stop itself
// (SIGSTOP: a stalled file system read). Nothing happens when none is set.
void test_hook_after_mark(int64_t block);
void test_hook_before_block(int64_t block);

}  // namespace gptqd
