// How a job is laid out over the ranks (DESIGN.md §3 step 1): world = stages x
// replicas; each stage owns a contiguous range of blocks balanced by weight bytes (or by block
// count when the stages work at the same time);
// stage 0 also owns the embeddings, the last stage the final layer norm. The replicas
// of a stage split its calibration samples and the rows of every layer.
// The automatic choice of the stage count is coordinator/plan_estimate.h's choose_plan.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/model/model_spec.h"
#include "worker/memory_model.h"  // block_weight_bytes, embedding_weight_bytes

namespace gptqd {

struct StagePlan {
  int64_t first_block = 0;  // [first_block, end_block)
  int64_t end_block = 0;
  uint64_t weight_bytes = 0;  // fp32 bytes of the weights this stage owns (embedding included)
};

struct Plan {
  int world = 1;
  int stages = 1;
  int replicas = 1;
  std::vector<StagePlan> stage;  // [stages]
  // rank = stage * replicas + replica: replicas of a stage are neighbours (so, with ranks
  // placed node by node, on the same node when replicas divide the ranks per node).
  int stage_of(int rank) const { return rank / replicas; }
  int replica_of(int rank) const { return rank % replicas; }
  int rank_of(int stage_index, int replica) const { return stage_index * replicas + replica; }
  std::string describe() const;
};

// How the blocks are split over the stages: by weight bytes, stage 0 carrying the embedding
// (the stages one after the other: each reads its weights per run), or by block count (the
// stages at the same time, calibration.inputs original: the slowest stage's blocks are the run).
enum class StageBalance { kWeights, kBlocks };

// The layout with exactly `stages` stages. Throws InputError (naming parallel.stages or
// calibration.nsamples) when it cannot work: stages outside [1, n_layer], world not a multiple
// of stages, a replica without a calibration sample (replicas > nsamples) or without a row of
// the smallest layer (replicas > hidden).
Plan make_plan(const ModelSpec& dims, int world, int stages, int64_t nsamples,
               StageBalance balance = StageBalance::kWeights);

// The stage counts make_plan accepts for this world, ascending (empty when none).
std::vector<int> feasible_stage_counts(const ModelSpec& dims, int world, int64_t nsamples);

}  // namespace gptqd
