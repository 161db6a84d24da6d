#include "worker/weights_guard.h"

#include <algorithm>

#include "base/check.h"
#include "base/log.h"
#include "io/checkpoint/checkpoint_inspect.h"

namespace gptqd {

WeightsGuard::WeightsGuard(Checkpoint& ckpt, const std::string& model_dir)
    : ckpt_(&ckpt), model_dir_(model_dir), active_(ckpt.has_weights_digests()) {
  if (!active_) return;
  const CkptLayout& layout = ckpt.layout();
  const auto n = static_cast<size_t>(layout.n_blocks);
  stored_ = ckpt.weights_digests();
  GPTQD_CHECK(stored_.size() == n + 1, "checkpoint {}: {} weights digests for {} blocks",
              ckpt.path(), stored_.size(), n);
  // The last block complete in any run: it and every block before it, and the embedding, made
  // the data of a complete block.
  int64_t last = -1;
  for (const CkptRunSpec& run : layout.runs) {
    const std::vector<uint8_t> done = ckpt.completion(run.name);
    for (size_t b = 0; b < n; ++b)
      if (done[b] != 0) last = std::max(last, static_cast<int64_t>(b));
  }
  state_.assign(n + 1, State::kFree);
  std::vector<int64_t> unknown;
  auto depended_on = [&](size_t i) {
    state_[i] = stored_[i] != 0 ? State::kVouched : State::kUnknown;
    if (stored_[i] == 0 && i < n) unknown.push_back(static_cast<int64_t>(i));
  };
  if (last >= 0) {
    for (size_t b = 0; b <= static_cast<size_t>(last); ++b) depended_on(b);
    depended_on(n);
  }
  if (!unknown.empty())
    GPTQD_LOG_WARN(
        "checkpoint {}: complete blocks depend on block(s) {}, which have no weights digest "
        "(marked by an older gptqd): the model's weights are not checked against them",
        ckpt.path(), format_block_list(unknown));
}

void WeightsGuard::admit(size_t i, const std::string& what, uint64_t digest) {
  switch (state_[i]) {
    case State::kVouched:
      if (stored_[i] == digest) return;
      throw InputError(fmt::format(
          "checkpoint {} was quantized from other weights than model {} holds now: {} (weights "
          "digest {:016x}, {:016x} stored); the model changed since the checkpoint was made: put "
          "the original weights back, or rerun with --restart to quantize every block again",
          ckpt_->path(), model_dir_, what, digest, stored_[i]));
    case State::kUnknown:
      return;
    case State::kFree:
      // Synced before anything is computed from these weights: a later stage, maybe on another
      // node, marks the blocks that depend on them with its own fsync, which does not cover
      // this rank's pages.
      ckpt_->write_weights_digest(static_cast<int64_t>(i), digest);
      ckpt_->sync();
      stored_[i] = digest;
      state_[i] = State::kVouched;
      return;
  }
}

void WeightsGuard::admit_block(int64_t b, uint64_t digest) {
  if (!active_) return;
  GPTQD_CHECK(b >= 0 && static_cast<size_t>(b) + 1 < state_.size(), "weights digest of block {}",
              b);
  admit(static_cast<size_t>(b), fmt::format("block {}'s weights differ", b), digest);
}

void WeightsGuard::admit_embedding(uint64_t digest) {
  if (!active_) return;
  admit(state_.size() - 1, "the embedding differs", digest);
}

}  // namespace gptqd
