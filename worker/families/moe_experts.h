// The routed experts of a mixture-of-experts block, shared by the Llama-attention mixtures
// (worker/families/moe.cpp) and DeepSeek-V3 (worker/families/deepseek.cpp): the capture of the
// experts' inputs and the routed sum, as worker/families/moe_forward.h describes them. The rows
// routed to an expert are gathered, run through its gate, up and down, and added back weighted,
// row by row (Backend::copy and a rank-1 gemm: no backend op of its own).
#pragma once

#include <cstdint>
#include <vector>

#include "worker/block_forward.h"
#include "worker/families/moe_routing.h"

namespace gptqd {

// Linear indices (the declaration's order): the `first` linears of the attention, then per
// expert gate, up; the shared expert's gate, up; per expert down; the shared expert's down.
struct ExpertLinears {
  int first;
  int64_t experts;
  bool shared;
  int gate(int64_t e) const { return static_cast<int>(first + 2 * e); }
  int up(int64_t e) const { return gate(e) + 1; }
  int shared_gate() const { return gate(experts); }
  int shared_up() const { return shared_gate() + 1; }
  int down(int64_t e) const { return static_cast<int>(first + 2 * experts + (shared ? 2 : 0) + e); }
  int shared_down() const { return down(experts); }
};

// Workspace buffers: a [tokens, hidden] the experts' (normed) input; rows [tokens, hidden] the
// gathered rows; gate, up [tokens, ffn]; out, moe [tokens, hidden]; one a single float.
struct ExpertBuffers {
  float* a;
  float* rows;
  float* gate;
  float* up;
  float* out;
  float* moe;
  float* one;
};

// y[row] += alpha * x (one row of n floats): a rank-1 gemm with the 1x1 matrix `one` = 1, so the
// weighted row is rounded once and then added, as transformers' index_add_ of y * w does.
void add_scaled_row(Backend& be, int64_t n, float alpha, const float* one, const float* x,
                    float* y);

// Group `in_group` is the experts' (and the shared expert's) gate/up input, in_group + 1 their
// down input. Captures group in_group's inputs (unless resumed after it), and returns false when
// the forward stops there; otherwise writes the routed sum into b.moe (every expert's down
// inputs captured on the way) and returns true. The shared expert is the caller's.
bool routed_experts(Backend& be, const ModelSpec& d, const BlockWeights& w, const ExpertLinears& L,
                    const std::vector<ExpertRoute>& routes, int64_t batch, int64_t seq,
                    const ExpertBuffers& b, const BlockWorkspace& ws, const LinearCapture& capture,
                    int in_group, int stop_after, int start_after);

}  // namespace gptqd
