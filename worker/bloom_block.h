// The BLOOM block forward (DESIGN.md §5) over a micro-batch of sequences, with
// optional capture of each linear layer's input (for the Hessians).
#pragma once

#include <functional>

#include "kernels/buffer.h"
#include "worker/bloom_dims.h"
#include "worker/bloom_weights.h"

namespace gptqd {

// Called with the input of linear `linear` for `tokens` tokens of `samples`
// sequences: x is backend memory [tokens, in].
using LinearCapture =
    std::function<void(int linear, const float* x, int64_t tokens, int64_t samples)>;

// Scratch buffers for a micro-batch of up to `max_tokens` tokens; reused across calls.
class BlockWorkspace {
 public:
  BlockWorkspace(Backend& be, const BloomDims& dims, int64_t max_tokens);
  int64_t max_tokens() const { return max_tokens_; }
  Buffer a, qkv, ctx, attn, m, f;

 private:
  int64_t max_tokens_;
};

// h [batch*seq, hidden] is replaced by the block's output. When `capture` is set it is
// called for every linear input; when `stop_after` >= 0 the forward returns right
// after capturing that linear's input (h is then left partially updated: callers
// that stop early pass a scratch copy).
void block_forward(Backend& be, const BloomDims& dims, const BlockWeights& w, int64_t batch,
                   int64_t seq, float* h, BlockWorkspace& ws, const LinearCapture& capture = {},
                   int stop_after = -1);

// out = block(in) for all `nseq` sequences in micro-batches of `micro` sequences.
// in and out are [nseq*seq, hidden]; they may be the same buffer.
void block_forward_all(Backend& be, const BloomDims& dims, const BlockWeights& w, int64_t nseq,
                       int64_t seq, int64_t micro, const float* in, float* out, BlockWorkspace& ws,
                       const LinearCapture& capture = {}, int stop_after = -1);

}  // namespace gptqd
