// How much score memory the CUDA attention holds at once (kernels/cuda/cuda_attention.cu):
// one sequence at a time, heads in chunks whose seq x seq fp32 score matrices fit in
// kMaxScoreBytes (at least one head). Shared with the memory model (worker/memory_model.h)
// so that `gptqd plan` counts what the kernel allocates.
#pragma once

#include <algorithm>
#include <cstdint>

namespace gptqd {

constexpr int64_t kMaxScoreBytes = int64_t{1} << 30;

// Heads whose scores are computed together for sequences of `seq` tokens.
inline int64_t attention_head_chunk(int64_t seq, int64_t n_head) {
  const int64_t per_head = std::max<int64_t>(1, seq * seq * static_cast<int64_t>(sizeof(float)));
  return std::clamp<int64_t>(kMaxScoreBytes / per_head, 1, std::max<int64_t>(n_head, 1));
}

// Bytes of the score buffer: attention_head_chunk heads of seq x seq fp32.
inline int64_t attention_score_bytes(int64_t seq, int64_t n_head) {
  return attention_head_chunk(seq, n_head) * seq * seq * static_cast<int64_t>(sizeof(float));
}

}  // namespace gptqd
