// Inputs the benchmarks share: normally distributed values from a fixed seed, so that every run
// and every thread count works on the same numbers.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace gptqd::bench {

inline std::vector<float> random_vector(int64_t n, uint64_t seed, float scale) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = normal(gen);
  return v;
}

}  // namespace gptqd::bench
