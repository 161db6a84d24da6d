// Checksums of a checkpoint's layer data (format_version 2, docs/checkpoint-format.md).
//
// Each layer has a dataset `checksum` of rows + 1 uint64 values: value r covers row r (its codes,
// its scale and zero in every group, its bias, and r itself, so swapped rows differ); value
// `rows` covers what the row_begin == 0 writer stores (g_idx, perm, the stats) together with the
// run's settings and the layer's shape, so a changed `bits` attribute or layer_shapes entry no
// longer matches the data written under the old one. Per row because the rows of one layer may
// be written by several ranks, each of which checksums only its own rows; no rank needs another
// rank's data. A computed checksum is never 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint_layout.h"

namespace gptqd::ckpt {

// A fast non-cryptographic 64-bit hash (xxHash64's round and avalanche on 8-byte words): it
// detects damage, it is not meant to resist an adversary.
class Hash64 {
 public:
  explicit Hash64(uint64_t seed = 0);
  Hash64& bytes(const void* data, size_t n);
  Hash64& u64(uint64_t v);
  Hash64& f32(float v);  // bit pattern (so -0.0 != 0.0 and NaN payloads count)
  Hash64& f64(double v);
  Hash64& str(const std::string& s);  // length-prefixed
  // Never 0 (0 marks an unwritten checksum).
  uint64_t digest() const;

 private:
  uint64_t acc_[4];
  uint64_t total_ = 0;
  unsigned char buf_[32];
  size_t fill_ = 0;
};

// Checksums of rows [row_begin, row_begin + nr) of a layer whose data holds those nr rows
// (codes [nr, cols], scales/zeros [groups, nr], bias [nr]).
std::vector<uint64_t> row_checksums(const LayerData& d, int64_t row_begin, int64_t nr, int64_t cols,
                                    int64_t groups);

// The checksum of g_idx, perm and stats with the run's settings and the layer's shape.
uint64_t meta_checksum(const LayerData& d, const CkptRunSpec& run, const CkptLayerShape& shape);

// Empty when `stored` (rows + 1 values) matches the data of a whole layer; otherwise what
// differs, e.g. "row 17's checksum does not match its codes, scales, zeros and bias".
std::string checksum_mismatch(const std::vector<uint64_t>& stored, const LayerData& d,
                              const CkptRunSpec& run, const CkptLayerShape& shape);

}  // namespace gptqd::ckpt
