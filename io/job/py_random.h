// CPython's random module, bit for bit, for the calls the GPTQ reference uses to draw its
// calibration windows: random.seed(n) for an int n >= 0, getrandbits(k), randint(a, b).
#pragma once

#include <array>
#include <cstdint>

namespace gptqd {

class PyRandom {
 public:
  // random.seed(seed): MT19937 init_by_array on the 32-bit words of seed, least significant
  // first (one word, 0, for seed 0).
  explicit PyRandom(uint64_t seed);

  // random.getrandbits(k) for 0 <= k <= 32 (InputError otherwise).
  uint32_t getrandbits(int k);

  // random.randint(a, b): a + _randbelow(b - a + 1), the rejection loop on getrandbits(bit
  // length of the range). Needs a <= b (InputError otherwise) and b - a < 2^63 - 1.
  int64_t randint(int64_t a, int64_t b);

 private:
  uint32_t next_u32();            // genrand_uint32
  uint64_t getrandbits64(int k);  // getrandbits for 0 <= k <= 64
  void init_by_array(const uint32_t* key, int n);

  std::array<uint32_t, 624> mt_{};
  int index_ = 625;
};

}  // namespace gptqd
