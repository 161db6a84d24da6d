// MT19937 as in CPython's Modules/_randommodule.c (itself the reference mt19937ar.c).
#include "io/job/py_random.h"

#include "base/check.h"

namespace gptqd {
namespace {

constexpr int kN = 624;
constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfU;
constexpr uint32_t kUpperMask = 0x80000000U;
constexpr uint32_t kLowerMask = 0x7fffffffU;

int bit_length(uint64_t n) {
  int k = 0;
  while (n != 0) {
    ++k;
    n >>= 1;
  }
  return k;
}

}  // namespace

PyRandom::PyRandom(uint64_t seed) {
  uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  init_by_array(key, key[1] != 0 ? 2 : 1);
}

void PyRandom::init_by_array(const uint32_t* key, int n) {
  mt_[0] = 19650218U;  // init_genrand(19650218)
  for (int i = 1; i < kN; ++i) {
    mt_[i] = 1812433253U * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  }
  int i = 1, j = 0;
  for (int k = kN > n ? kN : n; k > 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525U)) + key[j] +
             static_cast<uint32_t>(j);
    ++i;
    ++j;
    if (i >= kN) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
    if (j >= n) j = 0;
  }
  for (int k = kN - 1; k > 0; --k) {
    mt_[i] =
        (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941U)) - static_cast<uint32_t>(i);
    ++i;
    if (i >= kN) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
  }
  mt_[0] = 0x80000000U;  // MSB is 1, assuring a non-zero initial array
  index_ = kN;
}

uint32_t PyRandom::next_u32() {
  if (index_ >= kN) {
    for (int kk = 0; kk < kN; ++kk) {
      const uint32_t y = (mt_[kk] & kUpperMask) | (mt_[(kk + 1) % kN] & kLowerMask);
      mt_[kk] = mt_[(kk + kM) % kN] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
    }
    index_ = 0;
  }
  uint32_t y = mt_[index_++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= (y >> 18);
  return y;
}

uint64_t PyRandom::getrandbits64(int k) {
  // Words come least significant first; the last (most significant) one keeps its top bits.
  uint64_t r = 0;
  for (int shift = 0; k > 0; shift += 32, k -= 32) {
    uint32_t w = next_u32();
    if (k < 32) w >>= (32 - k);
    r |= static_cast<uint64_t>(w) << shift;
  }
  return r;
}

uint32_t PyRandom::getrandbits(int k) {
  GPTQD_INPUT_CHECK(k >= 0 && k <= 32, "getrandbits: k = {} is outside [0, 32]", k);
  return static_cast<uint32_t>(getrandbits64(k));
}

int64_t PyRandom::randint(int64_t a, int64_t b) {
  GPTQD_INPUT_CHECK(a <= b, "randint: empty range [{}, {}]", a, b);
  const uint64_t n = static_cast<uint64_t>(b) - static_cast<uint64_t>(a) + 1;
  GPTQD_INPUT_CHECK(n != 0, "randint: range [{}, {}] is too wide", a, b);
  const int k = bit_length(n);
  uint64_t r = getrandbits64(k);
  while (r >= n) r = getrandbits64(k);
  return static_cast<int64_t>(static_cast<uint64_t>(a) + r);
}

}  // namespace gptqd
