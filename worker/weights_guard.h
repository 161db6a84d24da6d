// What a resumed job trusts of its checkpoint's blocks: that they were quantized from the
// weights the model directory holds now. The checkpoint's weights_digest
// (docs/checkpoint-format.md) stores, per block, the digest of the weights it was quantized
// from (BlockWeights::digest, hashed as they were read) and that of the embedding; a stage's
// leader compares the digest of each block it reads with the stored one before anything is
// written for the block, and records it for a block before marking the block complete.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint.h"

namespace gptqd {

class WeightsGuard {
 public:
  // Reads weights_digest and which blocks are complete in some run (the state at the start of
  // the stage: call it before the stage marks anything). `ckpt` must outlive the guard; only
  // one rank of a stage keeps one (the one that marks blocks). A file without weights_digest
  // (made before gptqd recorded them) makes every method a no-op; blocks complete without a
  // stored digest (marked by an older gptqd) are never checked, and a warning lists them.
  WeightsGuard(Checkpoint& ckpt, const std::string& model_dir);

  // Before anything is written for block b (it may be complete in this run, or in another):
  // throws InputError, one line naming the block, the model and the checkpoint, when b is
  // complete in some run and `digest` is not the digest stored for it.
  void check_block(int64_t b, uint64_t digest) const;

  // Just before block b is marked complete: stores `digest` as its weights digest when no run
  // has b complete yet (the mark's sync puts it on disk before the mark). No-op otherwise
  // (check_block has compared it).
  void record_block(int64_t b, uint64_t digest);

  // The embedding the stage-0 inputs were embedded with, before the first block of a run is
  // read: when some block is complete in some run it must equal the stored digest (InputError
  // as check_block); otherwise it is stored and synced, before any block that depends on it
  // can be marked complete on any rank.
  void admit_embedding(uint64_t digest);

 private:
  enum class State : uint8_t {
    kFree,     // complete in no run: its digest is whatever the current weights give
    kVouched,  // complete in some run, digest stored: the weights must match it
    kUnknown,  // complete in some run without a digest (an older writer): not checked
  };
  [[noreturn]] void refuse(const std::string& what, uint64_t now, uint64_t stored) const;

  Checkpoint* ckpt_;
  std::string model_dir_;
  bool active_ = false;
  std::vector<uint64_t> stored_;  // [n_blocks + 1]; the last is the embedding
  std::vector<State> state_;      // [n_blocks + 1]
};

}  // namespace gptqd
