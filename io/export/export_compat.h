// Which serving stacks can take a run's settings, decided before any work: `gptqd quantize`
// warns (rank 0, one line) about runs vLLM cannot serve, `gptqd export --for vllm` refuses them.
// The conditions are vLLM's own (vllm/model_executor/layers/quantization/gptq_marlin.py and
// utils/marlin_utils.py): GPTQ checkpoints are served by the GPTQ Marlin kernels only, whose
// TYPE_MAP holds (4, sym) -> uint4b8 and (8, sym) -> uint8b128, with group sizes
// MARLIN_SUPPORTED_GROUP_SIZES = {-1, 32, 64, 128}; compressed-tensors W4A16/W8A16 checkpoints
// take the same Marlin kernels. A layer's shape must also divide into Marlin's tiles
// (out % 64 == 0, in % 128 == 0: verify_marlin_supports_shape), else vLLM needs another kernel.
// Mixtures of experts: vLLM runs every expert of a block as one FusedMoE layer, served by the
// Marlin MoE kernels (gptq_marlin.py GPTQMarlinMoEMethod, compressed_tensors_moe_wna16_marlin.py:
// int4/int8 only, the same uint4b8/uint8b128 types) when check_moe_marlin_supports_layer holds
// (hidden % 128 == 0, moe intermediate % max(64, group) == 0, group in {-1, 32, 64, 128}), and
// otherwise by the MoE WNA16 kernels (moe_wna16.py: GPTQ only without desc_act, 4/8 bits).
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
// moe: the model is a mixture of experts, and the reasons name vLLM's MoE kernels.
std::vector<std::string> vllm_refusals(const QuantSettings& q, bool moe = false);

// A mixture of experts' own reason (empty when none, or for a dense model): GPTQ act_order
// (desc_act) with experts whose shape the Marlin MoE kernels do not tile, where vLLM falls back to
// the MoE WNA16 kernels, which refuse desc_act. gptq: the export's format is gptq (v1), whose
// config says desc_act (compressed-tensors writes actorder "weight", which that fallback takes).
std::string vllm_moe_refusal(const QuantSettings& q, const ModelSpec& spec, bool gptq);

// The experts' shapes Marlin's MoE kernels do not tile ("experts 24x48: hidden 48 % 128 != 0"),
// empty when they do or for a dense model: vLLM then serves the experts with its slower MoE WNA16
// kernels.
std::string vllm_moe_shape_note(const QuantSettings& q, const ModelSpec& spec);

// Layers whose shape Marlin's tiles do not divide ("mlp.down_proj 64x160: in % 128 != 0"):
// vLLM then needs another kernel (or refuses); the shapes are per tensor-parallel shard, the
// whole layer here (TP = 1).
std::vector<std::string> vllm_shape_notes(const ModelSpec& spec);

// `gptqd quantize`: on rank 0, one warning line naming the runs vLLM cannot serve and why;
// nothing when every run can be served.
void warn_vllm_unservable(const std::vector<QuantConfig>& runs, const ModelSpec& spec);

}  // namespace gptqd
