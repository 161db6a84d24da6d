// The attention half of the Llama block, shared by the families built on it (worker/families/
// llama.cpp defines it; moe.cpp reuses it before its mixture of experts).
#pragma once

#include "worker/block_forward.h"

namespace gptqd {

// h += o(attn(rope(q(rmsnorm(h))), rope(k(.)), v(.))) with the Llama family's layout:
// spec.block_norms starts with input_layernorm, post_attention_layernorm and, with qk_norm,
// q_norm and k_norm; spec.linears with q, k, v (group and input 0) and o (group and input 1).
// Uses ws.bufs[0..5] (the input norm, q, k, v, context and output, of widths hidden, q, kv, kv,
// q and hidden per token). Captures inputs 0 and 1; returns true when it stopped after one
// (stop_after), h then partially updated. Resumed after input 0's capture (start_after 0) it
// reads ws.bufs[0], after input 1's ws.bufs[4]; from 2 on it does nothing.
bool llama_attention(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch,
                     int64_t seq, float* h, BlockWorkspace& ws, const LinearCapture& capture,
                     int stop_after, int start_after);

// The RoPE cos/sin tables of ws for sequences of `seq` tokens (computed once per length).
void ensure_rope(Backend& be, const ModelSpec& d, int64_t seq, BlockWorkspace& ws);

}  // namespace gptqd
