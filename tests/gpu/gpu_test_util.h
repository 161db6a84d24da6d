// Shared by the tests in tests/gpu: a fixture that holds a CUDA backend and its
// CPU twin (and skips, visibly, where no GPU is visible), the named tolerances,
// and the comparison helpers. The measure is ggml's test-backend-ops one: the
// normalized mean squared error sum (gpu - cpu)^2 / sum cpu^2, plus a separate
// check that the GPU produced no NaN/Inf where the CPU has finite values.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/buffer.h"

namespace gptqd::test {

// fp32 sums of up to a few hundred products in another order (cuBLAS vs OpenBLAS).
constexpr double kNmseGemm = 1e-10;
// fp64 factorizations on both sides, rounded to fp32: differences are fp32 roundings.
constexpr double kNmseFactor = 1e-10;
// Same fp32 operations, sums in double in another order (layer norm).
constexpr double kNmseReorderedDouble = 1e-13;
// CUDA's tanhf / expf are within 2 ulp of the CPU libm's.
constexpr double kNmseTranscendental = 1e-12;
// Scores (GEMM), exp and a float sum in another order, then a GEMM.
constexpr double kNmseAttention = 1e-10;
// A forward pass of a block: all of the above, chained.
constexpr double kNmseBlockForward = 1e-8;
// The GPTQ issue's acceptance bar for codes computed independently on each side.
constexpr double kMinIdenticalCodes = 0.99;

inline double nmse(const std::vector<float>& got, const std::vector<float>& ref) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(got[i]) - ref[i];
    err += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return norm > 0 ? err / norm : err;
}

// Expects same size, no NaN/Inf on the GPU where the CPU is finite, NMSE <= max_nmse.
inline void expect_close(const std::vector<float>& gpu, const std::vector<float>& cpu,
                         double max_nmse, const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  int64_t nonfinite = 0;
  for (size_t i = 0; i < cpu.size(); ++i)
    if (std::isfinite(cpu[i]) && !std::isfinite(gpu[i])) ++nonfinite;
  EXPECT_EQ(nonfinite, 0) << what << ": NaN/Inf on the GPU where the CPU is finite";
  EXPECT_LE(nmse(gpu, cpu), max_nmse) << what;
}

// Fraction of equal elements.
template <typename T>
double identical_fraction(const std::vector<T>& a, const std::vector<T>& b) {
  EXPECT_EQ(a.size(), b.size());
  if (a.empty()) return 1.0;
  size_t same = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) same += a[i] == b[i];
  return static_cast<double>(same) / static_cast<double>(a.size());
}

// H = X^T X / n + shift I for X [2n, n] with per-column scales: SPD, cond ~ 1e4.
inline std::vector<float> spd_matrix(int64_t dim, uint32_t seed, float shift) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  const int64_t rows = 2 * dim;
  std::vector<double> x(rows * dim);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < dim; ++c) x[r * dim + c] = normal(gen) * std::exp(-4.0 * c / dim);
  std::vector<float> h(dim * dim);
  for (int64_t i = 0; i < dim; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t r = 0; r < rows; ++r) s += x[r * dim + i] * x[r * dim + j];
      h[i * dim + j] = h[j * dim + i] = static_cast<float>(s / rows + (i == j ? shift : 0.0));
    }
  return h;
}

// A CUDA backend on device 0 and a CPU backend; every test using it reports
// itself skipped ("no CUDA device") where no GPU is visible, including builds
// without CUDA (cuda_device_count() is 0 there).
class CudaVsCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    gpu = make_cuda_backend(0);
    cpu = make_cpu_backend(1);
  }
  std::unique_ptr<Backend> gpu, cpu;
};

// The same host data in a buffer of each backend.
struct Twin {
  Twin(Backend& gpu_be, Backend& cpu_be, const std::vector<float>& host)
      : gpu(gpu_be, host), cpu(cpu_be, host) {}
  Buffer gpu, cpu;
};

}  // namespace gptqd::test
