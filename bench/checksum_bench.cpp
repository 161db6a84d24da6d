// bench/checksum_bench: the speed of the checkpoint's row checksums, which every write_layer
// computes on the write path and every read of a complete layer on the read path
// (io/checkpoint/checkpoint_checksum.h). It times ckpt::row_checksums with libxxhash's XXH3_64bits
// (format_version 3) and XXH64 (format 2) against the reference in the same run: the hand-written
// XXH64 and row loop gptqd used before it linked libxxhash (commit db53eaa, copied below as
// LegacyHash64 / legacy_row_checksums), and checks that the legacy code and libxxhash's XXH64
// give the same values. GB/s counts the bytes each row's checksum covers (r, codes, scales,
// zeros, bias); each figure is the fastest of --reps rounds, the three interleaved, so that other
// work on a shared machine moves them as little as it can.
//
//   build/bench/checksum_bench [--reps R]
// Shapes: a 4096 x 4096 layer with group size 128, BLOOM-176B's mlp.dense_4h_to_h (57344 columns,
// rows cut to 1024 of 14336: the per-row cost is what matters) with group size 128 and with one
// group per row, and a 14336-column row with group size 128.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint_checksum.h"

namespace gptqd {
namespace {

// The hand-written xxHash64 of db53eaa's io/checkpoint/checkpoint_checksum.cpp, unchanged but
// for its name: the reference this bench measures the library against.
class LegacyHash64 {
 public:
  LegacyHash64() : acc_{kP1 + kP2, kP2, 0, 0 - kP1}, buf_{} {}
  LegacyHash64& bytes(const void* data, size_t n) {
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
  LegacyHash64& u64(uint64_t v) { return bytes(&v, sizeof(v)); }
  LegacyHash64& f32(float v) { return bytes(&v, sizeof(v)); }
  uint64_t digest() const {
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

 private:
  static constexpr uint64_t kP1 = 11400714785074694791ULL;
  static constexpr uint64_t kP2 = 14029467366897019727ULL;
  static constexpr uint64_t kP3 = 1609587929392839161ULL;
  static constexpr uint64_t kP4 = 9650029242287828579ULL;
  static constexpr uint64_t kP5 = 2870177450012600261ULL;
  static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
  static uint64_t round(uint64_t acc, uint64_t input) {
    acc += input * kP2;
    acc = rotl(acc, 31);
    return acc * kP1;
  }
  static uint64_t merge(uint64_t acc, uint64_t val) {
    acc ^= round(0, val);
    return acc * kP1 + kP4;
  }
  static uint64_t load64(const unsigned char* p) {
    uint64_t v = 0;
    std::memcpy(&v, p, 8);
    return v;
  }
  static uint32_t load32(const unsigned char* p) {
    uint32_t v = 0;
    std::memcpy(&v, p, 4);
    return v;
  }
  uint64_t acc_[4];
  uint64_t total_ = 0;
  unsigned char buf_[32];
  size_t fill_ = 0;
};

std::vector<uint64_t> legacy_row_checksums(const LayerData& d, int64_t nr, int64_t cols,
                                           int64_t groups) {
  std::vector<uint64_t> out(static_cast<size_t>(nr));
  for (int64_t r = 0; r < nr; ++r) {
    LegacyHash64 h;
    h.u64(static_cast<uint64_t>(r));
    h.bytes(d.codes.data() + r * cols, static_cast<size_t>(cols));
    for (int64_t g = 0; g < groups; ++g) h.f32(d.scales[g * nr + r]).f32(d.zeros[g * nr + r]);
    h.f32(d.bias[r]);
    out[static_cast<size_t>(r)] = h.digest();
  }
  return out;
}

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Shape {
  const char* name;
  int64_t rows, cols, group_size;
};

}  // namespace
}  // namespace gptqd

int main(int argc, char** argv) {
  using namespace gptqd;
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: checksum_bench [--reps R]\n");
      return 2;
    }
  }
  const Shape shapes[] = {{"4096x4096 g128", 4096, 4096, 128},
                          {"2048x14336 g128", 2048, 14336, 128},
                          {"1024x57344 g128", 1024, 57344, 128},
                          {"1024x57344 g-1", 1024, 57344, -1}};
  std::printf("%-18s %12s %12s %12s %10s %10s  %s\n", "layer", "legacy GB/s", "XXH64 GB/s",
              "XXH3 GB/s", "XXH64/old", "XXH3/old", "XXH64 = legacy");
  bool all_same = true;
  for (const Shape& s : shapes) {
    const int64_t groups = s.group_size < 0 ? 1 : (s.cols + s.group_size - 1) / s.group_size;
    std::mt19937 gen(1);
    LayerData d;
    d.codes.resize(static_cast<size_t>(s.rows * s.cols));
    for (auto& c : d.codes) c = static_cast<uint8_t>(gen() & 15);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (int64_t i = 0; i < groups * s.rows; ++i) {
      d.scales.push_back(u(gen));
      d.zeros.push_back(static_cast<float>(gen() & 15));
    }
    for (int64_t r = 0; r < s.rows; ++r) d.bias.push_back(u(gen));
    const double gb = static_cast<double>(s.rows * (s.cols + 8 * groups + 12)) / 1e9;
    double best_legacy = 1e30, best_xxh64 = 1e30, best_xxh3 = 1e30;
    std::vector<uint64_t> a, b, c;
    for (int rep = 0; rep < reps; ++rep) {
      best_legacy = std::min(
          best_legacy, seconds_of([&] { a = legacy_row_checksums(d, s.rows, s.cols, groups); }));
      best_xxh64 = std::min(best_xxh64, seconds_of([&] {
                              b = ckpt::row_checksums(ckpt::ChecksumHash::kXxh64, d, 0, s.rows,
                                                      s.cols, groups);
                            }));
      best_xxh3 = std::min(best_xxh3, seconds_of([&] {
                             c = ckpt::row_checksums(ckpt::ChecksumHash::kXxh3, d, 0, s.rows,
                                                     s.cols, groups);
                           }));
    }
    const bool same = a == b && a != c;
    all_same = all_same && same;
    std::printf("%-18s %12.2f %12.2f %12.2f %10.2f %10.2f  %s\n", s.name, gb / best_legacy,
                gb / best_xxh64, gb / best_xxh3, best_legacy / best_xxh64, best_legacy / best_xxh3,
                same ? "yes" : "NO");
  }
  // The hash alone, on one 16 KiB buffer in cache (a row of 16384 codes without its gather).
  std::vector<unsigned char> buf(16384);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<unsigned char>(i * 31 + 7);
  const int n_hash = 20000;
  double best[3] = {1e30, 1e30, 1e30};
  uint64_t sink = 0;
  for (int rep = 0; rep < reps; ++rep) {
    best[0] = std::min(best[0], seconds_of([&] {
                         for (int i = 0; i < n_hash; ++i)
                           sink += LegacyHash64().bytes(buf.data(), buf.size()).digest();
                       }));
    best[1] =
        std::min(best[1], seconds_of([&] {
                   for (int i = 0; i < n_hash; ++i)
                     sink += ckpt::checksum_of(ckpt::ChecksumHash::kXxh64, buf.data(), buf.size());
                 }));
    best[2] = std::min(best[2], seconds_of([&] {
                         for (int i = 0; i < n_hash; ++i)
                           sink +=
                               ckpt::checksum_of(ckpt::ChecksumHash::kXxh3, buf.data(), buf.size());
                       }));
  }
  const double gb = static_cast<double>(n_hash) * static_cast<double>(buf.size()) / 1e9;
  std::printf("%-18s %12.2f %12.2f %12.2f %10.2f %10.2f  (sink %llx)\n", "hash 16 KiB",
              gb / best[0], gb / best[1], gb / best[2], best[0] / best[1], best[0] / best[2],
              static_cast<unsigned long long>(sink & 0xf));
  std::printf("fastest of %d rounds each; GB/s of the bytes the row checksums cover\n", reps);
  return all_same ? 0 : 1;
}
