// Which serving stacks can take a run's settings, decided before any work: `gptqd quantize`
// warns (rank 0, one line) about runs vLLM cannot serve, `gptqd export --for vllm` refuses them.
// The conditions are vLLM's own (vllm/model_executor/layers/quantization/gptq_marlin.py and
// utils/marlin_utils.py): GPTQ checkpoints are served by the GPTQ Marlin kernels only, whose
// TYPE_MAP holds (4, sym) -> uint4b8 and (8, sym) -> uint8b128, with group sizes
// MARLIN_SUPPORTED_GROUP_SIZES = {-1, 32, 64, 128}; compressed-tensors W4A16/W8A16 checkpoints
// take the same Marlin kernels. A layer's shape must also divide into Marlin's tiles
// (out % 64 == 0, in % 128 == 0: verify_marlin_supports_shape), else vLLM needs another kernel.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/job/job_config.h"
#include "io/model/model_spec.h"

namespace gptqd {

struct QuantSettings {
  int bits = 4;
  int64_t group_size = 128;
  bool sym = false;
  bool act_order = false;
  bool static_groups = false;
};

// Why vLLM's GPTQ Marlin path cannot serve these settings ("3-bit: ..."; "asymmetric: ...";
// "group size 256: ..."), one reason per entry; empty when it can. These make vLLM refuse.
std::vector<std::string> vllm_refusals(const QuantSettings& q);

// Layers whose shape Marlin's tiles do not divide ("mlp.down_proj 64x160: in % 128 != 0"):
// vLLM then needs another kernel (or refuses); the shapes are per tensor-parallel shard, the
// whole layer here (TP = 1).
std::vector<std::string> vllm_shape_notes(const ModelSpec& spec);

// `gptqd quantize`: on rank 0, one warning line naming the runs vLLM cannot serve and why;
// nothing when every run can be served.
void warn_vllm_unservable(const std::vector<QuantConfig>& runs, const ModelSpec& spec);

}  // namespace gptqd
