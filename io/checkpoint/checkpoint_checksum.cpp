#include "io/checkpoint/checkpoint_checksum.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace gptqd::ckpt {

namespace {

constexpr uint64_t kP1 = 11400714785074694791ULL;
constexpr uint64_t kP2 = 14029467366897019727ULL;
constexpr uint64_t kP3 = 1609587929392839161ULL;
constexpr uint64_t kP4 = 9650029242287828579ULL;
constexpr uint64_t kP5 = 2870177450012600261ULL;

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t round(uint64_t acc, uint64_t input) {
  acc += input * kP2;
  acc = rotl(acc, 31);
  return acc * kP1;
}

uint64_t merge(uint64_t acc, uint64_t val) {
  acc ^= round(0, val);
  return acc * kP1 + kP4;
}

uint64_t load64(const unsigned char* p) {
  uint64_t v = 0;
  std::memcpy(&v, p, 8);  // little-endian hosts only, like the rest of gptqd's file I/O
  return v;
}

uint32_t load32(const unsigned char* p) {
  uint32_t v = 0;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

Hash64::Hash64(uint64_t seed) : acc_{seed + kP1 + kP2, seed + kP2, seed, seed - kP1}, buf_{} {}

Hash64& Hash64::bytes(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  total_ += n;
  if (fill_ > 0) {
    const size_t take = std::min(n, sizeof(buf_) - fill_);
    std::memcpy(buf_ + fill_, p, take);
    fill_ += take;
    p += take;
    n -= take;
    if (fill_ < sizeof(buf_)) return *this;
    for (int i = 0; i < 4; ++i) acc_[i] = round(acc_[i], load64(buf_ + 8 * i));
    fill_ = 0;
  }
  for (; n >= 32; p += 32, n -= 32)
    for (int i = 0; i < 4; ++i) acc_[i] = round(acc_[i], load64(p + 8 * i));
  std::memcpy(buf_, p, n);
  fill_ = n;
  return *this;
}

Hash64& Hash64::u64(uint64_t v) { return bytes(&v, sizeof(v)); }

Hash64& Hash64::f32(float v) { return bytes(&v, sizeof(v)); }

Hash64& Hash64::f64(double v) { return bytes(&v, sizeof(v)); }

Hash64& Hash64::str(const std::string& s) {
  u64(s.size());
  return bytes(s.data(), s.size());
}

uint64_t Hash64::digest() const {
  uint64_t h = 0;
  if (total_ >= 32) {
    h = rotl(acc_[0], 1) + rotl(acc_[1], 7) + rotl(acc_[2], 12) + rotl(acc_[3], 18);
    for (uint64_t a : acc_) h = merge(h, a);
  } else {
    h = acc_[2] + kP5;
  }
  h += total_;
  const unsigned char* p = buf_;
  size_t n = fill_;
  for (; n >= 8; p += 8, n -= 8) h = rotl(h ^ round(0, load64(p)), 27) * kP1 + kP4;
  if (n >= 4) {
    h = rotl(h ^ (uint64_t{load32(p)} * kP1), 23) * kP2 + kP3;
    p += 4;
    n -= 4;
  }
  for (; n > 0; ++p, --n) h = rotl(h ^ (*p * kP5), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h == 0 ? 1 : h;
}

std::vector<uint64_t> row_checksums(const LayerData& d, int64_t row_begin, int64_t nr, int64_t cols,
                                    int64_t groups) {
  GPTQD_CHECK(static_cast<int64_t>(d.codes.size()) == nr * cols &&
                  static_cast<int64_t>(d.scales.size()) == groups * nr &&
                  static_cast<int64_t>(d.zeros.size()) == groups * nr &&
                  static_cast<int64_t>(d.bias.size()) == nr,
              "row_checksums: data sizes do not match {} rows x {} cols, {} groups", nr, cols,
              groups);
  std::vector<uint64_t> out(static_cast<size_t>(nr));
  for (int64_t r = 0; r < nr; ++r) {
    Hash64 h;
    h.u64(static_cast<uint64_t>(row_begin + r));
    h.bytes(d.codes.data() + r * cols, static_cast<size_t>(cols));
    for (int64_t g = 0; g < groups; ++g) h.f32(d.scales[g * nr + r]).f32(d.zeros[g * nr + r]);
    h.f32(d.bias[r]);
    out[static_cast<size_t>(r)] = h.digest();
  }
  return out;
}

uint64_t meta_checksum(const LayerData& d, const CkptRunSpec& run, const CkptLayerShape& shape) {
  Hash64 h;
  h.str(shape.name).u64(shape.rows).u64(shape.cols).u64(shape.bias ? 1 : 0);
  h.str(run.name).u64(run.bits).u64(run.group_size).u64(run.sym).u64(run.act_order);
  h.u64(run.static_groups).u64(run.true_sequential).f64(run.damp_percent).u64(run.block_size);
  h.u64(run.mse_clip);
  h.bytes(d.g_idx.data(), d.g_idx.size() * sizeof(int32_t));
  h.bytes(d.perm.data(), d.perm.size() * sizeof(int32_t));
  const LayerStats& s = d.stats;
  h.f64(s.gptq_loss).f64(s.gptq_err).f64(s.rtn_err).f64(s.seconds).f64(s.damp);
  return h.digest();
}

std::string checksum_mismatch(const std::vector<uint64_t>& stored, const LayerData& d,
                              const CkptRunSpec& run, const CkptLayerShape& shape) {
  const int64_t rows = shape.rows, cols = shape.cols;
  if (static_cast<int64_t>(stored.size()) != rows + 1)
    return fmt::format("it has {} checksums for {} rows", stored.size(), rows);
  if (stored[rows] != meta_checksum(d, run, shape))
    return "the checksum of its g_idx, perm and stats with the run's settings and the layer's "
           "shape does not match";
  const auto computed = row_checksums(d, 0, rows, cols, run.groups(cols));
  for (int64_t r = 0; r < rows; ++r)
    if (stored[r] != computed[r])
      return fmt::format("row {}'s checksum does not match its codes, scales, zeros and bias", r);
  return {};
}

}  // namespace gptqd::ckpt
