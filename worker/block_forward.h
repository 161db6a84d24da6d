// The block forward of any family (worker/families/) over a micro-batch of sequences, with
// optional capture of the input of each true-sequential group of linear layers (the Hessians).
#pragma once

#include <functional>
#include <vector>

#include "io/model/model_spec.h"
#include "kernels/buffer.h"
#include "worker/model_weights.h"

namespace gptqd {

// Called with the input of the linears of Hessian input `input` (LinearSpec::input in
// io/model/model_spec.h; the group's index in dense families, where each group has one input)
// for `tokens` tokens counted as `samples` samples (the sequences; for a routed expert its
// tokens, worker/families/moe_forward.h): x is backend memory [tokens, in]. One true-sequential
// group may capture several inputs (a mixture of experts: one per expert).
using LinearCapture =
    std::function<void(int input, const float* x, int64_t tokens, int64_t samples)>;

// Floats per token of each workspace buffer: the family's, the largest over the block kinds
// when the model has several (ModelSpec::kinds).
std::vector<int64_t> workspace_per_token(const ModelSpec& spec);

// Scratch buffers for a micro-batch of up to `max_tokens` tokens; reused across calls. Their
// number and sizes are workspace_per_token(spec): one workspace serves every block of the model.
class BlockWorkspace {
 public:
  BlockWorkspace(Backend& be, const ModelSpec& spec, int64_t max_tokens);
  int64_t max_tokens() const { return max_tokens_; }
  std::vector<Buffer> bufs;
  // RoPE tables [seq, head_dim / 2] for sequences of rope_seq tokens (Llama family), filled by
  // the forward on first use for a sequence length.
  Buffer rope_cos, rope_sin;
  int64_t rope_seq = 0;
  // Mixtures of experts (moe.calibration: all): a capture gives every expert's Hessian inputs
  // every token (its gate/up input and its own intermediate activations); the block output
  // stays the routed mix. Set by the block quantizer; the other families ignore it.
  bool capture_all_experts = false;

 private:
  int64_t max_tokens_;
};

// `spec` is the block's kind (ModelSpec::block(b)) for a model with several.
// h [batch*seq, hidden] is replaced by the block's output. When `capture` is set it is
// called for every Hessian input; when `stop_after` >= 0 the forward returns right
// after capturing that group's inputs (h is then left partially updated: callers that stop
// early pass a scratch copy). When `start_after` >= 0 the forward resumes right after that
// group's capture, from the state a forward stopped there left: h and the workspace buffers
// resume_buffers() names (restored by the caller; the others are scratch), without capturing
// that group or the ones before it. Stopping at a group and resuming there runs exactly the
// operations of the whole forward, so the results are the same bit for bit.
void block_forward(Backend& be, const ModelSpec& spec, const BlockWeights& w, int64_t batch,
                   int64_t seq, float* h, BlockWorkspace& ws, const LinearCapture& capture = {},
                   int stop_after = -1, int start_after = -1);

// Whether a forward of the family can resume after group `group`'s capture, and the workspace
// buffers it then needs besides h (*live, indices into BlockWorkspace::bufs).
bool resume_buffers(const ModelSpec& spec, int group, std::vector<int>* live);

// out = block(in) for all `nseq` sequences in micro-batches of `micro` sequences.
// in and out are [nseq*seq, hidden]; they may be the same buffer.
void block_forward_all(Backend& be, const ModelSpec& spec, const BlockWeights& w, int64_t nseq,
                       int64_t seq, int64_t micro, const float* in, float* out, BlockWorkspace& ws,
                       const LinearCapture& capture = {}, int stop_after = -1);

}  // namespace gptqd
