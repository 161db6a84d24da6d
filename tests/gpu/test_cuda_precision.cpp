// The fast precision's ops on CUDA (bf16 tensor-core GEMMs, kernels/cuda/cuda_bf16.cu) against
// their CPU twins in the same precision (tests/unit/test_precision.cpp pins the CPU twin to
// sgemm of explicitly rounded operands). Both multiply the same bf16 values exactly and sum in
// fp32 in another order, so the tolerance is the fp32 GEMM's; the controls show the GPU really
// rounds (far from the exact CPU result) and that kExact is untouched. Skipped without a GPU.
#include <gtest/gtest.h>

#include <tuple>
#include <vector>

#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

using test::CudaVsCpu;
using test::expect_close;
using test::nmse;
using test::random_vector;
using test::Twin;

// Rounding both operands to bf16 moves a GEMM's result by up to 2^-8 relative per operand: an
// NMSE around 1e-6 against the exact result, far above kNmseGemm.
constexpr double kMinNmseFastVsExact = 1e-8;

class CudaVsCpuFastGemm : public CudaVsCpu,
                          public ::testing::WithParamInterface<std::tuple<bool, bool>> {};

TEST_P(CudaVsCpuFastGemm, OddShapesStridesAlphaBeta) {
  const auto [ta, tb] = GetParam();
  const int64_t m = 37, n = 53, k = 71;
  const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
  const auto a = random_vector((ta ? k : m) * lda, 10);
  const auto b = random_vector((tb ? n : k) * ldb, 11);
  const auto c0 = random_vector(m * ldc, 12);
  Twin A(*gpu, *cpu, a), B(*gpu, *cpu, b), C(*gpu, *cpu, c0);
  gpu->set_precision(Precision::kFast);
  cpu->set_precision(Precision::kFast);
  gpu->forward_gemm(ta, tb, m, n, k, 0.75f, A.gpu.data(), lda, B.gpu.data(), ldb, -0.5f,
                    C.gpu.data(), ldc);
  cpu->forward_gemm(ta, tb, m, n, k, 0.75f, A.cpu.data(), lda, B.cpu.data(), ldb, -0.5f,
                    C.cpu.data(), ldc);
  const auto g = C.gpu.to_host();
  expect_close(g, C.cpu.to_host(), test::kNmseGemm, "fast forward_gemm");
  for (int64_t r = 0; r < m; ++r)  // the padding columns of C are untouched
    for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(g[r * ldc + j], c0[r * ldc + j]);
  // Control: the exact CPU result is far from the GPU's fast one.
  std::vector<float> exact = c0;
  cpu->set_precision(Precision::kExact);
  cpu->gemm(ta, tb, m, n, k, 0.75f, a.data(), lda, b.data(), ldb, -0.5f, exact.data(), ldc);
  EXPECT_GT(nmse(g, exact), kMinNmseFastVsExact) << "the GPU did not round to bf16";
}

// The resident-bf16 weight: to_bf16 equal to the CPU's bits (ties, Inf, NaN), and
// forward_gemm_bf16_b on the GPU's bf16 B equal to the GPU's own fast forward_gemm on the fp32
// B (the same bf16 operands into the same cuBLAS call) and close to the CPU twin's.
TEST_P(CudaVsCpuFastGemm, Bf16WeightIsTheSameProduct) {
  const auto [ta, tb] = GetParam();
  const int64_t m = 29, n = 41, k = 67;
  const int64_t lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 3, ldc = n + 1;
  const auto a = random_vector((ta ? k : m) * lda, 30);
  auto b = random_vector((tb ? n : k) * ldb, 31);
  b[0] = 1.0f + 1.0f / 256.0f;  // a tie
  b[1] = 3.4e38f;               // rounds to Inf
  const auto c0 = random_vector(m * ldc, 32);
  Twin A(*gpu, *cpu, a), B(*gpu, *cpu, b), C(*gpu, *cpu, c0), W(*gpu, *cpu, c0);
  const int64_t nb = static_cast<int64_t>(b.size());
  Bf16Buffer g16(*gpu, nb), c16(*cpu, nb);
  gpu->to_bf16(nb, B.gpu.data(), g16.data());
  cpu->to_bf16(nb, B.cpu.data(), c16.data());
  EXPECT_EQ(g16.to_host(), c16.to_host()) << "to_bf16";
  b[1] = 0.5f;  // keep the products finite
  Twin B2(*gpu, *cpu, b);
  gpu->to_bf16(nb, B2.gpu.data(), g16.data());
  cpu->to_bf16(nb, B2.cpu.data(), c16.data());
  gpu->set_precision(Precision::kFast);
  cpu->set_precision(Precision::kFast);
  gpu->forward_gemm_bf16_b(ta, tb, m, n, k, 0.75f, A.gpu.data(), lda, g16.data(), ldb, -0.5f,
                           C.gpu.data(), ldc);
  cpu->forward_gemm_bf16_b(ta, tb, m, n, k, 0.75f, A.cpu.data(), lda, c16.data(), ldb, -0.5f,
                           C.cpu.data(), ldc);
  gpu->forward_gemm(ta, tb, m, n, k, 0.75f, A.gpu.data(), lda, B2.gpu.data(), ldb, -0.5f,
                    W.gpu.data(), ldc);
  const auto g = C.gpu.to_host();
  EXPECT_EQ(g, W.gpu.to_host()) << "bf16 weight vs fp32 weight rounded by forward_gemm";
  expect_close(g, C.cpu.to_host(), test::kNmseGemm, "forward_gemm_bf16_b");
}

INSTANTIATE_TEST_SUITE_P(AllTransposes, CudaVsCpuFastGemm,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()));

TEST_F(CudaVsCpu, ExactForwardGemmIsGemm) {
  const int64_t m = 19, n = 23, k = 29;
  Twin A(*gpu, *cpu, random_vector(m * k, 13)), B(*gpu, *cpu, random_vector(n * k, 14));
  Buffer c1(*gpu, m * n), c2(*gpu, m * n);
  gpu->forward_gemm(false, true, m, n, k, 1.0f, A.gpu.data(), k, B.gpu.data(), k, 0.0f, c1.data(),
                    n);
  gpu->gemm(false, true, m, n, k, 1.0f, A.gpu.data(), k, B.gpu.data(), k, 0.0f, c2.data(), n);
  EXPECT_EQ(c1.to_host(), c2.to_host());
}

TEST_F(CudaVsCpu, FastXtxMatchesAndIsSymmetric) {
  const int64_t n = 123, d = 45;
  const auto x = random_vector(n * d, 20);
  Twin X(*gpu, *cpu, x);
  Twin H(*gpu, *cpu, random_vector(d * d, 21));  // non-symmetric start, as the exact test
  gpu->set_precision(Precision::kFast);
  cpu->set_precision(Precision::kFast);
  gpu->xtx(n, d, X.gpu.data(), 0.3f, 0.7f, H.gpu.data());
  cpu->xtx(n, d, X.cpu.data(), 0.3f, 0.7f, H.cpu.data());
  const auto g = H.gpu.to_host(), c = H.cpu.to_host();
  expect_close(g, c, test::kNmseGemm, "fast xtx");
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < i; ++j) ASSERT_EQ(g[i * d + j], g[j * d + i]) << i << "," << j;
  // Control: the exact CPU Hessian of the same start is far from it.
  Buffer h_exact(*cpu, random_vector(d * d, 21));
  cpu->set_precision(Precision::kExact);
  cpu->xtx(n, d, X.cpu.data(), 0.3f, 0.7f, h_exact.data());
  EXPECT_GT(nmse(g, h_exact.to_host()), kMinNmseFastVsExact) << "the GPU did not round to bf16";
  // No rows: H = alpha H exactly.
  gpu->xtx(0, d, X.gpu.data(), 0.5f, 1.0f, H.gpu.data());
  const auto g0 = H.gpu.to_host();
  for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g0[i], 0.5f * g[i]) << i;
}

}  // namespace
}  // namespace gptqd
