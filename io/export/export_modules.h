// Which modules of an export are quantized and which stay in full precision, named as the
// loaders' configs name them (docs/export.md, "Mixtures of experts"). A mixture of experts keeps
// linears GPTQ does not quantize: every block's router (`mlp.gate`, Mixtral's
// `block_sparse_moe.gate`) and Qwen2-MoE's `mlp.shared_expert_gate`. The family declares them as
// 2-D block tensors beside the 1-D norms (io/model/families/moe.cpp); every other linear of a
// block is a LinearSpec and quantized.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/model/model_spec.h"

namespace gptqd {

struct ExportModules {
  // The quantized modules of a block (relative names, the checkpoint's own: "self_attn.q_proj",
  // "block_sparse_moe.experts.0.w1"), one list per true-sequential group: GPTQConfig's and
  // optimum's `modules_in_block_to_quantize` (optimum's convert_model replaces only the block's
  // nn.Linear whose name ends with one of them), which vLLM's GPTQ configs also read. Mixtral's
  // experts are also listed under the names transformers 5 with Defuser gives them
  // ("mlp.experts.0.gate_proj"), after the checkpoint's names of their group.
  std::vector<std::vector<std::string>> in_block;
  // The full-precision linears of every block, full module names as transformers' *ForCausalLM
  // names them in the file ("model.layers.0.mlp.gate"), blocks in order; empty for dense models.
  std::vector<std::string> full_precision;
};

ExportModules export_modules(const ModelSpec& spec, int64_t n_blocks);

}  // namespace gptqd
