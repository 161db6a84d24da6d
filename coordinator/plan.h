// How a job is laid out over the ranks (DESIGN.md §3 step 1): world = stages x
// replicas; each stage owns a contiguous range of blocks balanced by weight bytes;
// stage 0 also owns the embeddings, the last stage the final layer norm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "worker/bloom_dims.h"

namespace gptqd {

struct StagePlan {
  int64_t first_block = 0;  // [first_block, end_block)
  int64_t end_block = 0;
  uint64_t weight_bytes = 0;  // fp32 bytes of the weights this stage holds
};

struct Plan {
  int world = 1;
  int stages = 1;
  int replicas = 1;
  std::vector<StagePlan> stage;  // [stages]
  // rank = stage * replicas + replica: replicas of a stage are neighbours.
  int stage_of(int rank) const { return rank / replicas; }
  int replica_of(int rank) const { return rank % replicas; }
  int rank_of(int stage_index, int replica) const { return stage_index * replicas + replica; }
  std::string describe() const;
};

// Bytes (fp32) of one block's weights and of the embedding.
uint64_t block_weight_bytes(const BloomDims& dims);
uint64_t embedding_weight_bytes(const BloomDims& dims);

// stages_requested 0 = auto. Throws InputError for a layout that cannot work
// (more stages than blocks, world not a multiple of stages, ...).
Plan make_plan(const BloomDims& dims, int world, int64_t stages_requested);

}  // namespace gptqd
