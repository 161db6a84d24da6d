#include "worker/sequential_pass.h"

#include <algorithm>

#include "base/check.h"
#include "worker/block_quantizer.h"
#include "worker/families/family_forward.h"

namespace gptqd {

int64_t sequential_state_floats_per_token(const ModelSpec& d, bool keep_input) {
  const std::vector<int64_t> widths = family_forward(d).workspace(d);
  int64_t widest = 0;
  std::vector<int> live;
  for (int g = 0; g < d.n_groups; ++g) {
    if (!resume_buffers(d, g, &live)) continue;
    int64_t w = 0;
    for (int b : live) w += widths[static_cast<size_t>(b)];
    widest = std::max(widest, w);
  }
  return widest + (keep_input ? d.hidden : 0);
}

SequentialPass::SequentialPass(Backend& be, const ModelSpec& spec, Activations& act, int64_t micro,
                               bool keep_input)
    : be_(be),
      spec_(spec),
      act_(act),
      micro_(micro),
      keep_input_(keep_input),
      widths_(family_forward(spec).workspace(spec)),
      width_(sequential_state_floats_per_token(spec, keep_input)) {
  GPTQD_CHECK(micro > 0, "micro-batch size must be positive");
  const int64_t floats = act.nseq * act.seq * width_;
  if (act.on_host())
    host_ = HostBuffer(be, floats);
  else
    dev_ = Buffer(be, floats);
}

float* SequentialPass::state(int64_t first) {
  return (act_.on_host() ? host_.data() : dev_.data()) + first * act_.seq * width_;
}

bool SequentialPass::live_at(int point, std::vector<int>* live) const {
  live->clear();
  return point < 0 || resume_buffers(spec_, point, live);
}

void SequentialPass::run_to(const BlockWeights& w, BlockWorkspace& ws, int group,
                            const LinearCapture& capture, const SliceHook& before,
                            const SliceHook& after) {
  GPTQD_CHECK(group < spec_.n_groups && (group < 0 || group > at_) && at_ < spec_.n_groups,
              "the sequential pass at group {} cannot go to group {}", at_, group);
  GPTQD_CHECK(group >= 0 || !keep_input_, "a pass that keeps its input writes no output");
  std::vector<int> from, to;
  live_at(at_, &from);
  // Resumable there (or the block's output): the state is kept and the pass stands there.
  const bool keep = group < 0 || live_at(group, &to);
  const bool host = act_.on_host();
  const int64_t hd = spec_.hidden, row = act_.seq * hd;
  // Moves n floats between the kept state (host or device) and the device.
  auto load = [&](float* dst, const float* src, int64_t n) {
    if (host)
      be_.to_device(dst, src, n);
    else
      be_.copy(dst, src, n);
  };
  auto store = [&](float* dst, const float* src, int64_t n) {
    if (host)
      be_.to_host(dst, src, n);
    else
      be_.copy(dst, src, n);
  };
  for (int64_t s = 0; s < act_.nseq; s += micro_) {
    const int64_t b = std::min(micro_, act_.nseq - s);
    const int64_t tokens = b * act_.seq;
    if (before) before(s, b);
    // h of this micro-batch: the activations themselves (the residual stream updated in place)
    // or, with keep_input past the block's input, the kept state's copy.
    float* kept = state(s);
    float* const src_h = keep_input_ && at_ >= 0 ? kept : act_.seqs(s, hd);
    float* x = host ? act_.staged.data() : act_.scratch.data();
    if (!host && keep && !keep_input_) {
      x = src_h;  // in place
    } else {
      GPTQD_CHECK((host ? act_.staged.size() : act_.scratch.size()) >= b * row,
                  "{} floats of activation scratch for a micro-batch of {}",
                  host ? act_.staged.size() : act_.scratch.size(), b * row);
      load(x, src_h, b * row);
    }
    float* off = kept + (keep_input_ ? b * row : 0);
    for (int i : from) {
      const int64_t n = tokens * widths_[static_cast<size_t>(i)];
      load(ws.bufs[static_cast<size_t>(i)].data(), off, n);
      off += n;
    }
    block_forward(be_, spec_, w, b, act_.seq, x, ws, capture, group, at_);
    if (keep) {
      if (keep_input_)
        store(kept, x, b * row);
      else if (host)
        be_.to_host(act_.seqs(s, hd), x, b * row);
      off = kept + (keep_input_ ? b * row : 0);
      for (int i : to) {
        const int64_t n = tokens * widths_[static_cast<size_t>(i)];
        store(off, ws.bufs[static_cast<size_t>(i)].data(), n);
        off += n;
      }
    }
    if (after) {
      be_.synchronize();  // the hook hands the slice to a transport
      after(s, b);
    }
  }
  if (keep) at_ = group < 0 ? spec_.n_groups : group;
}

}  // namespace gptqd
