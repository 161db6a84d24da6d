#include "io/checkpoint/checkpoint_checksum.h"

#include <xxhash.h>
// XXH3 through libxxhash's runtime dispatch on x86-64 (SSE2, AVX2 or AVX-512 as the CPU has;
// Debian's library exports it): 2 to 3x the speed of its plain SSE2 build, the same values.
#if defined(__x86_64__) && __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h>
#endif

#include <cstring>

#include "base/check.h"

namespace gptqd::ckpt {

namespace {

// The bytes a checksum covers, built up in the documented order (little-endian hosts only, like
// the rest of gptqd's file I/O).
class ByteString {
 public:
  ByteString& bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    b_.insert(b_.end(), p, p + n);
    return *this;
  }
  ByteString& u64(uint64_t v) { return bytes(&v, sizeof(v)); }
  ByteString& f32(float v) { return bytes(&v, sizeof(v)); }
  ByteString& f64(double v) { return bytes(&v, sizeof(v)); }
  ByteString& str(const std::string& s) { return u64(s.size()).bytes(s.data(), s.size()); }
  uint64_t checksum(ChecksumHash hash) const { return checksum_of(hash, b_.data(), b_.size()); }

 private:
  std::vector<unsigned char> b_;
};

void free_state(XXH64_state_s* s) { XXH64_freeState(s); }

XXH64_state_t* new_state() {
  XXH64_state_t* s = XXH64_createState();
  GPTQD_CHECK(s != nullptr, "XXH64_createState: out of memory");
  return s;
}

}  // namespace

ChecksumHash checksum_hash(int64_t format_version) {
  GPTQD_CHECK(format_version >= 2, "format_version {} has no checksums", format_version);
  return format_version == 2 ? ChecksumHash::kXxh64 : ChecksumHash::kXxh3;
}

const char* checksum_hash_name(ChecksumHash h) {
  switch (h) {
    case ChecksumHash::kXxh64:
      return "XXH64";
    case ChecksumHash::kXxh3:
      return "XXH3_64bits";
  }
  return "?";
}

uint64_t checksum_of(ChecksumHash hash, const void* data, size_t n) {
  uint64_t h = 0;
  switch (hash) {
    case ChecksumHash::kXxh64:
      h = XXH64(data, n, 0);
      break;
    case ChecksumHash::kXxh3:
      h = XXH3_64bits(data, n);
      break;
  }
  return h == 0 ? 1 : h;
}

Hash64::Hash64(uint64_t seed) : state_(new_state(), free_state) { reset(seed); }
Hash64::~Hash64() = default;
Hash64::Hash64(Hash64&&) noexcept = default;
Hash64& Hash64::operator=(Hash64&&) noexcept = default;

Hash64& Hash64::reset(uint64_t seed) {
  XXH64_reset(state_.get(), seed);
  return *this;
}

Hash64& Hash64::bytes(const void* data, size_t n) {
  if (n > 0) XXH64_update(state_.get(), data, n);
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
  const uint64_t h = XXH64_digest(state_.get());
  return h == 0 ? 1 : h;
}

std::vector<uint64_t> row_checksums(ChecksumHash hash, const LayerData& d, int64_t row_begin,
                                    int64_t nr, int64_t cols, int64_t groups) {
  GPTQD_CHECK(static_cast<int64_t>(d.codes.size()) == nr * cols &&
                  static_cast<int64_t>(d.scales.size()) == groups * nr &&
                  static_cast<int64_t>(d.zeros.size()) == groups * nr &&
                  static_cast<int64_t>(d.bias.size()) == nr,
              "row_checksums: data sizes do not match {} rows x {} cols, {} groups", nr, cols,
              groups);
  std::vector<uint64_t> out(static_cast<size_t>(nr));
  // Streamed into the library's state, the codes straight from the data (no copy): r, codes,
  // then (scale, zero) of each group and bias gathered into `tail`.
  std::vector<unsigned char> tail(static_cast<size_t>(8 * groups + 4));
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> s3(nullptr, XXH3_freeState);
  std::unique_ptr<XXH64_state_t, XXH_errorcode (*)(XXH64_state_t*)> s64(nullptr, XXH64_freeState);
  if (hash == ChecksumHash::kXxh3)
    s3.reset(XXH3_createState());
  else
    s64.reset(XXH64_createState());
  GPTQD_CHECK(s3 || s64, "row_checksums: out of memory for the hash state");
  for (int64_t r = 0; r < nr; ++r) {
    const uint64_t index = static_cast<uint64_t>(row_begin + r);
    const unsigned char* codes = d.codes.data() + r * cols;
    unsigned char* p = tail.data();
    for (int64_t g = 0; g < groups; ++g, p += 8) {
      std::memcpy(p, &d.scales[g * nr + r], 4);
      std::memcpy(p + 4, &d.zeros[g * nr + r], 4);
    }
    std::memcpy(p, &d.bias[r], 4);
    uint64_t h = 0;
    switch (hash) {
      case ChecksumHash::kXxh64:
        XXH64_reset(s64.get(), 0);
        XXH64_update(s64.get(), &index, 8);
        XXH64_update(s64.get(), codes, static_cast<size_t>(cols));
        XXH64_update(s64.get(), tail.data(), tail.size());
        h = XXH64_digest(s64.get());
        break;
      case ChecksumHash::kXxh3:
        XXH3_64bits_reset(s3.get());
        XXH3_64bits_update(s3.get(), &index, 8);
        XXH3_64bits_update(s3.get(), codes, static_cast<size_t>(cols));
        XXH3_64bits_update(s3.get(), tail.data(), tail.size());
        h = XXH3_64bits_digest(s3.get());
        break;
    }
    out[static_cast<size_t>(r)] = h == 0 ? 1 : h;
  }
  return out;
}

uint64_t meta_checksum(ChecksumHash hash, const LayerData& d, const CkptRunSpec& run,
                       const CkptLayerShape& shape) {
  ByteString b;
  b.str(shape.name).u64(shape.rows).u64(shape.cols).u64(shape.bias ? 1 : 0);
  b.str(run.name).u64(run.bits).u64(run.group_size).u64(run.sym).u64(run.act_order);
  b.u64(run.static_groups).u64(run.true_sequential).f64(run.damp_percent).u64(run.block_size);
  b.u64(run.mse_clip);
  b.bytes(d.g_idx.data(), d.g_idx.size() * sizeof(int32_t));
  b.bytes(d.perm.data(), d.perm.size() * sizeof(int32_t));
  const LayerStats& s = d.stats;
  b.f64(s.gptq_loss).f64(s.gptq_err).f64(s.rtn_err).f64(s.seconds).f64(s.damp);
  return b.checksum(hash);
}

std::string checksum_mismatch(ChecksumHash hash, const std::vector<uint64_t>& stored,
                              const LayerData& d, const CkptRunSpec& run,
                              const CkptLayerShape& shape) {
  const int64_t rows = shape.rows, cols = shape.cols;
  if (static_cast<int64_t>(stored.size()) != rows + 1)
    return fmt::format("it has {} checksums for {} rows", stored.size(), rows);
  if (stored[rows] != meta_checksum(hash, d, run, shape))
    return "the checksum of its g_idx, perm and stats with the run's settings and the layer's "
           "shape does not match";
  const auto computed = row_checksums(hash, d, 0, rows, cols, run.groups(cols));
  for (int64_t r = 0; r < rows; ++r)
    if (stored[r] != computed[r])
      return fmt::format("row {}'s checksum does not match its codes, scales, zeros and bias", r);
  return {};
}

}  // namespace gptqd::ckpt
