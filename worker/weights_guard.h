// What a resumed job trusts of its checkpoint's blocks: that they were quantized from the
// weights the model directory holds now. The checkpoint's weights_digest
// (docs/checkpoint-format.md) stores, per block, the digest of the weights it was quantized
// from (BlockWeights::digest, hashed as they were read) and that of the embedding. A complete
// block's data depends on its own weights and on those of every block before it (its inputs
// came through them) and of the embedding, so a stage's leader compares the digest of each
// block it reads with the stored one whenever that block or a later one is complete in some
// run, before anything is computed from the block; otherwise it stores the block's digest then,
// before any block that depends on it can be marked complete.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint.h"

namespace gptqd {

class WeightsGuard {
 public:
  // Reads weights_digest and the completion of every run (the state at the start of the
  // stage: build it before the stage marks anything). `ckpt` must outlive the guard; only one
  // rank of a stage keeps one (the one that marks blocks). A file without weights_digest (made
  // before gptqd recorded them) makes every method a no-op; a block that some complete block
  // depends on but has no stored digest (an older gptqd marked it) is never checked, and a
  // warning lists such blocks.
  WeightsGuard(Checkpoint& ckpt, const std::string& model_dir);

  // Block b's weights, as read, before anything is computed from them. When b or a later
  // block is complete in some run (or b was admitted before in this job): throws InputError,
  // one line naming the block, the model and the checkpoint, unless `digest` is the stored
  // one. Otherwise stores `digest` as b's and syncs it.
  void admit_block(int64_t b, uint64_t digest);

  // The embedding the stage-0 inputs are embedded with, the same way (every block depends on
  // it).
  void admit_embedding(uint64_t digest);

 private:
  enum class State : uint8_t {
    kFree,     // nothing complete depends on it: its digest is whatever the weights give now
    kVouched,  // complete blocks depend on it and its digest is stored: the weights must match
    kUnknown,  // complete blocks depend on it without a stored digest (an older writer)
  };
  void admit(size_t index, const std::string& what, uint64_t digest);

  Checkpoint* ckpt_;
  std::string model_dir_;
  bool active_ = false;
  std::vector<uint64_t> stored_;  // [n_blocks + 1]; the last is the embedding
  std::vector<State> state_;      // [n_blocks + 1]
};

}  // namespace gptqd
