// OPT's forward (DESIGN.md §5b), as transformers' OPTDecoderLayer:
//   pre-LN:  h += out(attn(qkv(LN1(h))));          h += fc2(relu(fc1(LN2(h))))
//   post-LN: h = LN1(h + out(attn(qkv(h))));       h = LN2(h + fc2(relu(fc1(h))))
// q is scaled by head_dim^-0.5 (after its bias; here folded into the attention's scale), the
// learned positions are read at position + 2.
#include <cmath>

#include "base/check.h"
#include "worker/families/family_forward.h"

namespace gptqd {
namespace {

// spec.block_norms order (io/model/families/opt.cpp) and the linears'.
enum Norm { kAttnLnW, kAttnLnB, kMlpLnW, kMlpLnB };
enum Linear { kQ, kK, kV, kOut, kFc1, kFc2 };
enum Group { kQkvGroup, kOutGroup, kFc1Group, kFc2Group };
enum Buf { kA, kQOut, kKOut, kVOut, kCtx, kRes, kF };
constexpr int64_t kPositionOffset = 2;

std::vector<int64_t> workspace(const ModelSpec& d) {
  return {d.hidden, d.hidden, d.hidden, d.hidden, d.hidden, d.hidden, d.ffn};
}

void block(Backend& be, const ModelSpec& d, const BlockWeights& w, int64_t batch, int64_t seq,
           float* h, BlockWorkspace& ws, const LinearCapture& capture, int stop_after,
           int start_after) {
  const int64_t tokens = batch * seq;
  const int64_t hd = d.hidden;
  const bool pre = d.config.do_layer_norm_before;
  float* a = ws.bufs[kA].data();
  float* ctx = ws.bufs[kCtx].data();
  float* res = ws.bufs[kRes].data();
  float* f = ws.bufs[kF].data();
  auto captured = [&](int group, const float* x) {
    if (capture) capture(group, x, tokens, batch);
    return stop_after == group;
  };
  auto norm = [&](int weight, const float* x, float* y) {
    be.layer_norm(tokens, hd, x, w.norms[weight].data(), w.norms[weight + 1].data(), d.norm_eps, y);
  };
  // The input of the q/k/v and fc1 groups: the layer norm's output (pre-LN) or h itself.
  const float* x = pre ? a : h;

  // Attention. A resumed forward (start_after, worker/block_forward.h) skips what comes before
  // its point.
  if (start_after < kQkvGroup) {
    if (pre) norm(kAttnLnW, h, a);
    if (captured(kQkvGroup, x)) return;
  }
  if (start_after < kOutGroup) {
    float* q = ws.bufs[kQOut].data();
    float* k = ws.bufs[kKOut].data();
    float* v = ws.bufs[kVOut].data();
    linear_forward(be, w.linears[kQ], tokens, x, q);
    linear_forward(be, w.linears[kK], tokens, x, k);
    linear_forward(be, w.linears[kV], tokens, x, v);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d.head_dim));
    be.attention(batch, seq, d.n_head, d.n_head, d.head_dim, q, k, v, scale, ctx);
    if (captured(kOutGroup, ctx)) return;
  }
  if (start_after < kFc1Group) {
    linear_forward(be, w.linears[kOut], tokens, ctx, res);
    be.add(tokens * hd, res, h);
    if (!pre) norm(kAttnLnW, h, h);

    // MLP
    if (pre) norm(kMlpLnW, h, a);
    if (captured(kFc1Group, x)) return;
  }
  if (start_after < kFc2Group) {
    linear_forward(be, w.linears[kFc1], tokens, x, f);
    be.relu(tokens * d.ffn, f);
    if (captured(kFc2Group, f)) return;
  }
  linear_forward(be, w.linears[kFc2], tokens, f, res);
  be.add(tokens * hd, res, h);
  if (!pre) norm(kMlpLnW, h, h);
}

// The buffers a forward resumed after `group`'s capture reads besides h: the group's input (h
// itself for the q/k/v and fc1 groups of post-LN OPT).
bool resume_points(const ModelSpec& d, int group, std::vector<int>* live) {
  live->clear();
  if (group == kOutGroup) live->push_back(kCtx);
  if (group == kFc2Group) live->push_back(kF);
  if ((group == kQkvGroup || group == kFc1Group) && d.config.do_layer_norm_before)
    live->push_back(kA);
  return true;
}

// h = embed_tokens(ids) + embed_positions(position + 2)
void embed(Backend& be, const ModelSpec& d, const EmbeddingWeights& e,
           const std::vector<int32_t>& tokens, int64_t seq, float* h) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  GPTQD_CHECK(seq > 0 && n % seq == 0, "{} tokens are not whole sequences of {}", n, seq);
  const int64_t rows = e.tensors[1].size() / d.hidden;
  GPTQD_INPUT_CHECK(seq + kPositionOffset <= rows,
                    "sequences of {} tokens exceed OPT's {} learned positions", seq,
                    rows - kPositionOffset);
  for (int64_t t = 0; t < n; ++t) {
    be.copy(h + t * d.hidden, e.table().data() + static_cast<int64_t>(tokens[t]) * d.hidden,
            d.hidden);
  }
  // The positions of the sequences are the same: add them sequence by sequence.
  const float* pos = e.tensors[1].data() + kPositionOffset * d.hidden;
  for (int64_t s = 0; s < n; s += seq) be.add(seq * d.hidden, pos, h + s * d.hidden);
}

void final_norm(Backend& be, const ModelSpec& d, const FinalNormWeights& f, int64_t n,
                const float* h, float* out) {
  if (f.norm.empty()) {
    be.copy(out, h, n * d.hidden);
    return;
  }
  be.layer_norm(n, d.hidden, h, f.norm[0].data(), f.norm[1].data(), d.norm_eps, out);
}

}  // namespace

const FamilyForward& opt_forward() {
  static const FamilyForward kForward{workspace, block, resume_points, embed, final_norm};
  return kForward;
}

}  // namespace gptqd
