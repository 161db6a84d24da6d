#include "worker/block_forward.h"

#include <algorithm>

#include "base/check.h"
#include "worker/families/family_forward.h"

namespace gptqd {

std::vector<int64_t> workspace_per_token(const ModelSpec& spec) {
  std::vector<int64_t> widths;
  for (int k = 0; k < spec.n_kinds(); ++k) {
    const ModelSpec& kind = spec.kind(k);
    const std::vector<int64_t> w = family_forward(kind).workspace(kind);
    if (widths.size() < w.size()) widths.resize(w.size(), 0);
    for (size_t i = 0; i < w.size(); ++i) widths[i] = std::max(widths[i], w[i]);
  }
  return widths;
}

BlockWorkspace::BlockWorkspace(Backend& be, const ModelSpec& spec, int64_t max_tokens)
    : max_tokens_(max_tokens) {
  for (int64_t per_token : workspace_per_token(spec)) bufs.emplace_back(be, max_tokens * per_token);
}

void block_forward(Backend& be, const ModelSpec& spec, const BlockWeights& w, int64_t batch,
                   int64_t seq, float* h, BlockWorkspace& ws, const LinearCapture& capture,
                   int stop_after, int start_after) {
  GPTQD_CHECK(batch * seq <= ws.max_tokens(), "micro-batch of {} tokens exceeds workspace of {}",
              batch * seq, ws.max_tokens());
  GPTQD_CHECK(start_after < spec.n_groups && (stop_after < 0 || start_after < stop_after),
              "a block forward from group {} to group {} of {}", start_after, stop_after,
              spec.n_groups);
  family_forward(spec).block(be, spec, w, batch, seq, h, ws, capture, stop_after, start_after);
}

bool resume_buffers(const ModelSpec& spec, int group, std::vector<int>* live) {
  GPTQD_CHECK(group >= 0 && group < spec.n_groups, "group {} of {}", group, spec.n_groups);
  return family_forward(spec).resume_buffers(spec, group, live);
}

void block_forward_all(Backend& be, const ModelSpec& spec, const BlockWeights& w, int64_t nseq,
                       int64_t seq, int64_t micro, const float* in, float* out, BlockWorkspace& ws,
                       const LinearCapture& capture, int stop_after) {
  GPTQD_CHECK(micro > 0, "micro-batch size must be positive");
  const int64_t row = seq * spec.hidden;
  for (int64_t s = 0; s < nseq; s += micro) {
    const int64_t b = std::min(micro, nseq - s);
    float* dst = out + s * row;
    if (dst != in + s * row) be.copy(dst, in + s * row, b * row);
    block_forward(be, spec, w, b, seq, dst, ws, capture, stop_after);
  }
}

}  // namespace gptqd
