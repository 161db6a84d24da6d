// Checksums of a checkpoint's layer data (format_version 2 and 3, docs/checkpoint-format.md).
//
// Each layer has a dataset `checksum` of rows + 1 uint64 values: value r covers row r (its codes,
// its scale and zero in every group, its bias, and r itself, so swapped rows differ); value
// `rows` covers what the row_begin == 0 writer stores (g_idx, perm, the stats) together with the
// run's settings and the layer's shape, so a changed `bits` attribute or layer_shapes entry no
// longer matches the data written under the old one. Per row because the rows of one layer may
// be written by several ranks, each of which checksums only its own rows; no rank needs another
// rank's data. A computed checksum is never 0.
//
// The hash is the reference xxHash library's (Debian libxxhash), seed 0, so any xxHash binding
// (python's `xxhash`, `xxhsum`) recomputes a value from the documented bytes: format_version 3
// uses XXH3_64bits, format_version 2 XXH64 (the values of the hand-written XXH64 gptqd had before
// it linked the library, so format 2 files still verify and resume).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint_layout.h"

struct XXH64_state_s;

namespace gptqd::ckpt {

// The hash of a file's checksums, by its format_version.
enum class ChecksumHash {
  kXxh64,  // format_version 2: XXH64, seed 0
  kXxh3,   // format_version 3: XXH3_64bits, seed 0
};
// The hash a file of `format_version` (>= 2) uses; CheckError below 2 (no checksums).
ChecksumHash checksum_hash(int64_t format_version);
const char* checksum_hash_name(ChecksumHash h);  // "XXH64", "XXH3_64bits"

// XXH64 (seed `seed`) of everything fed to it, streamed (libxxhash's XXH64_state). Also the
// weights digest of worker/model_weights.h. A fast non-cryptographic hash: it detects damage,
// it is not meant to resist an adversary.
class Hash64 {
 public:
  explicit Hash64(uint64_t seed = 0);
  ~Hash64();
  Hash64(Hash64&&) noexcept;
  Hash64& operator=(Hash64&&) noexcept;
  Hash64& reset(uint64_t seed = 0);  // as if new
  Hash64& bytes(const void* data, size_t n);
  Hash64& u64(uint64_t v);
  Hash64& f32(float v);  // bit pattern (so -0.0 != 0.0 and NaN payloads count)
  Hash64& f64(double v);
  Hash64& str(const std::string& s);  // length-prefixed
  // Never 0 (0 marks an unwritten checksum): XXH64's 0 is returned as 1.
  uint64_t digest() const;

 private:
  std::unique_ptr<XXH64_state_s, void (*)(XXH64_state_s*)> state_;
};

// The value of `hash` (seed 0) over n bytes, 0 returned as 1.
uint64_t checksum_of(ChecksumHash hash, const void* data, size_t n);

// Checksums of rows [row_begin, row_begin + nr) of a layer whose data holds those nr rows
// (codes [nr, cols], scales/zeros [groups, nr], bias [nr]).
std::vector<uint64_t> row_checksums(ChecksumHash hash, const LayerData& d, int64_t row_begin,
                                    int64_t nr, int64_t cols, int64_t groups);

// The checksum of g_idx, perm and stats with the run's settings and the layer's shape.
uint64_t meta_checksum(ChecksumHash hash, const LayerData& d, const CkptRunSpec& run,
                       const CkptLayerShape& shape);

// Empty when `stored` (rows + 1 values) matches the data of a whole layer; otherwise what
// differs, e.g. "row 17's checksum does not match its codes, scales, zeros and bias".
std::string checksum_mismatch(ChecksumHash hash, const std::vector<uint64_t>& stored,
                              const LayerData& d, const CkptRunSpec& run,
                              const CkptLayerShape& shape);

}  // namespace gptqd::ckpt
