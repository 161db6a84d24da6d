#include "worker/weights_guard.h"

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
  std::vector<bool> complete(n, false);
  for (const CkptRunSpec& run : layout.runs) {
    const std::vector<uint8_t> done = ckpt.completion(run.name);
    for (size_t b = 0; b < n; ++b) complete[b] = complete[b] || done[b] != 0;
  }
  bool any = false;
  std::vector<int64_t> unknown;
  state_.assign(n + 1, State::kFree);
  for (size_t b = 0; b < n; ++b) {
    if (!complete[b]) continue;
    any = true;
    state_[b] = stored_[b] != 0 ? State::kVouched : State::kUnknown;
    if (stored_[b] == 0) unknown.push_back(static_cast<int64_t>(b));
  }
  // The embedding made the inputs of every complete block.
  if (any) state_[n] = stored_[n] != 0 ? State::kVouched : State::kUnknown;
  if (!unknown.empty())
    GPTQD_LOG_WARN(
        "checkpoint {}: block(s) {} are complete without a weights digest (marked by an older "
        "gptqd): the model's weights are not checked against them",
        ckpt.path(), format_block_list(unknown));
}

void WeightsGuard::refuse(const std::string& what, uint64_t now, uint64_t stored) const {
  throw InputError(fmt::format(
      "checkpoint {} was quantized from other weights than model {} holds now: {} (weights "
      "digest {:016x}, {:016x} stored); the model changed since the checkpoint was made: put the "
      "original weights back, or rerun with --restart to quantize every block again",
      ckpt_->path(), model_dir_, what, now, stored));
}

void WeightsGuard::check_block(int64_t b, uint64_t digest) const {
  if (!active_) return;
  const auto i = static_cast<size_t>(b);
  GPTQD_CHECK(b >= 0 && i + 1 < state_.size(), "weights digest of block {}", b);
  if (state_[i] == State::kVouched && stored_[i] != digest)
    refuse(fmt::format("block {}'s weights differ", b), digest, stored_[i]);
}

void WeightsGuard::record_block(int64_t b, uint64_t digest) {
  if (!active_) return;
  const auto i = static_cast<size_t>(b);
  GPTQD_CHECK(b >= 0 && i + 1 < state_.size(), "weights digest of block {}", b);
  if (state_[i] != State::kFree) return;
  ckpt_->write_weights_digest(b, digest);
  stored_[i] = digest;
  state_[i] = State::kVouched;
}

void WeightsGuard::admit_embedding(uint64_t digest) {
  if (!active_) return;
  const size_t i = state_.size() - 1;
  if (state_[i] == State::kVouched && stored_[i] != digest)
    refuse("the embedding differs", digest, stored_[i]);
  if (state_[i] != State::kFree) return;
  // Synced now: a later stage (maybe on another node) marks its blocks with its own fsync,
  // which does not cover this rank's pages.
  ckpt_->write_weights_digest(static_cast<int64_t>(i), digest);
  ckpt_->sync();
  stored_[i] = digest;
  state_[i] = State::kVouched;
}

}  // namespace gptqd
