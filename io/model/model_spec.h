// What a model family declares about its checkpoint (DESIGN.md §5b): tensor names and shapes
// of the embedding, every block and the head, and the block's linear layers in true-sequential
// groups (the layers of a group share one input and so one Hessian). The pipeline (plan,
// memory model, stage, checkpoint, eval, export) reads these declarations and nothing else of
// a family; io/model/families/<family>.cpp fills them in, worker/families/<family>.cpp implements
// the forward that matches them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/model/model_config.h"

namespace gptqd {

struct TensorSpec {
  std::string name;  // canonical (no file prefix); relative to the block for block tensors
  std::vector<int64_t> shape;
  int64_t numel() const;
};

// One linear layer y = x W^T (+ b) of a block; W is [out, in].
struct LinearSpec {
  std::string module;  // HF module path inside the block: "self_attn.q_proj"
  int64_t out = 0, in = 0;
  bool bias = false;
  int group = 0;  // its true-sequential group (one step of GPTQ's true-sequential order)
  // Its Hessian input: the layers of an input share their input x and so one Hessian. -1 (the
  // default) means the group's: dense families have one input per group. A mixture of experts
  // has many inputs in one group (each expert's gate/up see only the tokens routed to it), so
  // one true-sequential step captures all of them in one partial forward.
  int input = -1;
  int expert = -1;  // >= 0: a routed expert's linear (its input is the tokens routed to it)
};

struct ModelSpec {
  ModelConfig config;
  Family family = Family::kBloom;
  // The shapes the pipeline works with (copied from config for brevity at the call sites).
  int64_t n_layer = 0, hidden = 0, n_head = 0, n_kv_head = 0, head_dim = 0, ffn = 0, vocab = 0;
  float norm_eps = 1e-5f;

  // Canonical name = the name in the file less the first of these prefixes it starts with.
  // hf_prefix is what transformers' *ForCausalLM writes (the export writes it back).
  std::vector<std::string> strip_prefixes;
  std::string hf_prefix;
  std::string block_prefix;  // "h." (BLOOM) or "layers.": block b's tensors are
                             // "<block_prefix><b>.<relative name>"

  std::vector<TensorSpec> block_norms;  // a block's other tensors, in the family's order
  std::vector<LinearSpec> linears;      // in true-sequential order, groups contiguous
  int n_groups = 0;
  int n_inputs = 0;  // Hessian inputs (== n_groups for dense families); linears' inputs contiguous
  // A dense-MLP block of a mixture-of-experts family (DeepSeek-V3's first_k_dense_replace
  // blocks, Qwen2/3-MoE's mlp_only_layers / decoder_sparse_step): the family's plain gated MLP of
  // width ffn (intermediate_size) where the other blocks have their experts.
  bool dense_mlp = false;

  // Blocks of several kinds (a model mixing dense-MLP and MoE blocks). Then block_norms, linears,
  // n_groups, n_inputs and dense_mlp above are those of block 0's kind, kinds[k] is kind k's
  // whole spec (its own kinds empty), and block_kind[b] is block b's kind. Both are empty when
  // every block has the same tensors (every dense family). Whatever iterates a block's linears
  // asks block(b) for them.
  std::vector<std::shared_ptr<const ModelSpec>> kinds;
  std::vector<int> block_kind;
  std::vector<TensorSpec> embedding;   // [0] is the token table [vocab, hidden]
  std::vector<TensorSpec> final_norm;  // may be empty (OPT post-LN)
  std::string lm_head;                 // untied head "lm_head.weight" [vocab, hidden]; "" when
                                       // the head is embedding[0]
  int64_t max_seqlen = 0;              // > 0: longer sequences are refused (max_seqlen_why)
  std::string max_seqlen_why;

  // Builds the spec of a parsed config (the family's declarations). Throws InputError for a
  // config the family cannot run (e.g. inconsistent head counts), naming the keys.
  static ModelSpec of(const ModelConfig& config);

  // The spec of block b's kind: *this unless the blocks are of several kinds.
  const ModelSpec& block(int64_t b) const;
  // The number of block kinds (1 unless mixed) and kind k's spec (kind(0) is *this when 1).
  int n_kinds() const { return kinds.empty() ? 1 : static_cast<int>(kinds.size()); }
  const ModelSpec& kind(int k) const;
  int kind_of(int64_t b) const;
  bool mixed() const { return !kinds.empty(); }

  // "<block_prefix><block>.<relative>"
  std::string block_tensor_name(int64_t block, const std::string& relative) const;
  // Every tensor of block `block` (canonical names): its kind's norms, then each linear's weight
  // and, if it has one, bias, in linears order.
  std::vector<TensorSpec> block_tensors(int64_t block) const;
  // The linears of group g, as indices into linears (of this spec: a kind's, see block()).
  std::vector<int> group_members(int g) const;
  // The linears of Hessian input k, as indices into linears.
  std::vector<int> input_members(int k) const;
  // The Hessian inputs of group g, in order.
  std::vector<int> group_inputs(int g) const;
  // Every tensor a full model needs: embedding, every block, final norm, untied head.
  std::vector<TensorSpec> all_tensors() const;
  // Index into block_tensors() of linear i's weight (its bias, if any, follows it); this spec's
  // linears (a kind's: call it on block(b)).
  int linear_weight_index(int i) const;
  // InputError "<what> is N tokens, but <max_seqlen_why>" when seqlen exceeds max_seqlen.
  void check_seqlen(int64_t seqlen, const std::string& what) const;
  // The canonical form of a name found in a file.
  std::string canonical(const std::string& name_in_file) const;
  // The name transformers' *ForCausalLM uses for a canonical one (export).
  std::string hf_name(const std::string& canonical) const;
};

}  // namespace gptqd
