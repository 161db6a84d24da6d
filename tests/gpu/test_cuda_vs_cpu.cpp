// Every op of the CUDA backend against its CPU twin (make_cpu_backend) on the
// same random inputs, odd shapes and strides included, with the named
// tolerances of gpu_test_util.h. Where the CUDA kernel repeats the CPU's
// per-element arithmetic in the same order (copies, adds, the quantizer) the
// results must be identical, not close. Skipped, visibly, without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
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
using test::random_vector;
using test::spd_matrix;
using test::Twin;

// ---- memory --------------------------------------------------------------------

TEST_F(CudaVsCpu, AllocIsZeroedAndCopiesRoundTrip) {
  EXPECT_EQ(gpu->name().rfind("cuda:", 0), 0u) << gpu->name();
  Buffer buf(*gpu, 1001);
  for (float v : buf.to_host()) ASSERT_EQ(v, 0.0f);
  ByteBuffer bytes(*gpu, 77);
  for (uint8_t v : bytes.to_host()) ASSERT_EQ(v, 0);

  const auto host = random_vector(1001, 1);
  gpu->to_device(buf.data(), host.data(), 1001);
  EXPECT_EQ(buf.to_host(), host);
  Buffer other(*gpu, 1001);
  gpu->copy(other.data(), buf.data(), 1001);
  EXPECT_EQ(other.to_host(), host);
  gpu->fill(other.data(), 2.5f, 10);
  const auto filled = other.to_host();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(filled[i], 2.5f);
  EXPECT_EQ(filled[10], host[10]);
  gpu->synchronize();
}

TEST_F(CudaVsCpu, OverlappingCopyIsAMemmove) {
  const auto host = random_vector(500, 2);
  for (int64_t shift : {-37, 37}) {
    Twin t(*gpu, *cpu, host);
    const int64_t n = 400, from = 50, to = from + shift;
    gpu->copy(t.gpu.data() + to, t.gpu.data() + from, n);
    cpu->copy(t.cpu.data() + to, t.cpu.data() + from, n);
    EXPECT_EQ(t.gpu.to_host(), t.cpu.to_host()) << "shift " << shift;
  }
}

TEST_F(CudaVsCpu, Copy2dRespectsLeadingDimensions) {
  const auto src = random_vector(7 * 13, 3);
  const auto dst = random_vector(7 * 11, 4);
  Twin s(*gpu, *cpu, src), d(*gpu, *cpu, dst);
  gpu->copy_2d(7, 9, s.gpu.data() + 2, 13, d.gpu.data() + 1, 11);
  cpu->copy_2d(7, 9, s.cpu.data() + 2, 13, d.cpu.data() + 1, 11);
  EXPECT_EQ(d.gpu.to_host(), d.cpu.to_host());
  gpu->copy_2d(1, 5, s.gpu.data(), 1, d.gpu.data(), 1);  // one row: strides irrelevant
  cpu->copy_2d(1, 5, s.cpu.data(), 1, d.cpu.data(), 1);
  EXPECT_EQ(d.gpu.to_host(), d.cpu.to_host());
}

// ---- dense linear algebra -------------------------------------------------------

class CudaVsCpuGemm : public CudaVsCpu,
                      public ::testing::WithParamInterface<std::tuple<bool, bool>> {};

TEST_P(CudaVsCpuGemm, OddShapesStridesAlphaBeta) {
  const auto [ta, tb] = GetParam();
  const int64_t m = 37, n = 53, k = 71;
  const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
  const auto a = random_vector((ta ? k : m) * lda, 10);
  const auto b = random_vector((tb ? n : k) * ldb, 11);
  const auto c0 = random_vector(m * ldc, 12);
  Twin A(*gpu, *cpu, a), B(*gpu, *cpu, b), C(*gpu, *cpu, c0);
  gpu->gemm(ta, tb, m, n, k, 0.75f, A.gpu.data(), lda, B.gpu.data(), ldb, -0.5f, C.gpu.data(), ldc);
  cpu->gemm(ta, tb, m, n, k, 0.75f, A.cpu.data(), lda, B.cpu.data(), ldb, -0.5f, C.cpu.data(), ldc);
  const auto g = C.gpu.to_host(), c = C.cpu.to_host();
  expect_close(g, c, test::kNmseGemm, "gemm");
  // The padding columns of C are untouched.
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(g[r * ldc + j], c0[r * ldc + j]);
}

INSTANTIATE_TEST_SUITE_P(AllTransposes, CudaVsCpuGemm,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()));

TEST_F(CudaVsCpu, GemmBetaZeroIgnoresNaNAndEmptyInnerDimensionScales) {
  const int64_t m = 5, n = 6, k = 7;
  std::vector<float> c0(m * n, std::numeric_limits<float>::quiet_NaN());
  Twin A(*gpu, *cpu, random_vector(m * k, 13)), B(*gpu, *cpu, random_vector(k * n, 14));
  Twin C(*gpu, *cpu, c0);
  gpu->gemm(false, false, m, n, k, 1.0f, A.gpu.data(), k, B.gpu.data(), n, 0.0f, C.gpu.data(), n);
  cpu->gemm(false, false, m, n, k, 1.0f, A.cpu.data(), k, B.cpu.data(), n, 0.0f, C.cpu.data(), n);
  expect_close(C.gpu.to_host(), C.cpu.to_host(), test::kNmseGemm, "gemm beta 0 over NaN");

  const auto c1 = random_vector(m * n, 15);
  Twin D(*gpu, *cpu, c1);
  gpu->gemm(false, false, m, n, 0, 1.0f, A.gpu.data(), k, B.gpu.data(), n, 3.0f, D.gpu.data(), n);
  cpu->gemm(false, false, m, n, 0, 1.0f, A.cpu.data(), k, B.cpu.data(), n, 3.0f, D.cpu.data(), n);
  EXPECT_EQ(D.gpu.to_host(), D.cpu.to_host()) << "k = 0: C = beta C exactly";
}

TEST_F(CudaVsCpu, XtxAccumulatesBothTriangles) {
  const int64_t n = 123, d = 45;
  Twin X(*gpu, *cpu, random_vector(n * d, 20));
  // A non-symmetric start: both backends keep the computed upper triangle and
  // mirror it, so they must agree on the lower one too.
  Twin H(*gpu, *cpu, random_vector(d * d, 21));
  gpu->xtx(n, d, X.gpu.data(), 0.3f, 0.7f, H.gpu.data());
  cpu->xtx(n, d, X.cpu.data(), 0.3f, 0.7f, H.cpu.data());
  const auto g = H.gpu.to_host();
  expect_close(g, H.cpu.to_host(), test::kNmseGemm, "xtx");
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < i; ++j) ASSERT_EQ(g[i * d + j], g[j * d + i]) << i << "," << j;

  // No rows: H = alpha H exactly, on each side (the two sides' H already differ in the last
  // bits: cuBLAS and OpenBLAS sum in other orders).
  const auto g0 = H.gpu.to_host(), c0 = H.cpu.to_host();
  gpu->xtx(0, d, X.gpu.data(), 0.5f, 1.0f, H.gpu.data());
  cpu->xtx(0, d, X.cpu.data(), 0.5f, 1.0f, H.cpu.data());
  const auto g1 = H.gpu.to_host(), c1 = H.cpu.to_host();
  for (size_t i = 0; i < g0.size(); ++i) {
    ASSERT_EQ(g1[i], 0.5f * g0[i]) << i;
    ASSERT_EQ(c1[i], 0.5f * c0[i]) << i;
  }
}

TEST_F(CudaVsCpu, InverseCholeskyUpperMatchesAndZeroesTheLowerPart) {
  for (int64_t n : {1, 2, 33, 150}) {
    Twin H(*gpu, *cpu, spd_matrix(n, 30 + static_cast<uint32_t>(n), 1e-3f));
    ASSERT_TRUE(gpu->inverse_cholesky_upper(n, H.gpu.data())) << n;
    ASSERT_TRUE(cpu->inverse_cholesky_upper(n, H.cpu.data())) << n;
    const auto g = H.gpu.to_host();
    expect_close(g, H.cpu.to_host(), test::kNmseFactor,
                 "inverse_cholesky_upper n=" + std::to_string(n));
    for (int64_t r = 0; r < n; ++r) {
      EXPECT_GT(g[r * n + r], 0.0f);
      for (int64_t c = 0; c < r; ++c) ASSERT_EQ(g[r * n + c], 0.0f) << r << "," << c;
    }
  }
}

TEST_F(CudaVsCpu, InverseCholeskyUpperRejectsIndefiniteMatrices) {
  auto h = spd_matrix(40, 40, 1e-3f);
  h[17 * 40 + 17] = -1.0f;  // a negative diagonal entry: not positive definite
  Twin H(*gpu, *cpu, h);
  EXPECT_FALSE(gpu->inverse_cholesky_upper(40, H.gpu.data()));
  EXPECT_FALSE(cpu->inverse_cholesky_upper(40, H.cpu.data()));
}

// ---- quantizer --------------------------------------------------------------------

// Rows with the cases the quantizer special-cases: all zero, all positive, all
// negative, then random ones.
std::vector<float> quant_rows(int64_t rows, int64_t ld, uint32_t seed) {
  auto w = random_vector(rows * ld, seed, -2.0f, 2.0f);
  for (int64_t c = 0; c < ld; ++c) {
    w[0 * ld + c] = 0.0f;
    w[1 * ld + c] = std::fabs(w[1 * ld + c]);
    w[2 * ld + c] = -std::fabs(w[2 * ld + c]);
  }
  return w;
}

class CudaVsCpuQuantParams : public CudaVsCpu,
                             public ::testing::WithParamInterface<std::tuple<int, bool>> {};

TEST_P(CudaVsCpuQuantParams, IdenticalToCpu) {
  const auto [bits, sym] = GetParam();
  const int64_t rows = 67, cols = 123, ld = 130;
  Twin W(*gpu, *cpu, quant_rows(rows, ld, 50));
  Buffer gs(*gpu, rows), gz(*gpu, rows), cs(*cpu, rows), cz(*cpu, rows);
  QuantGrid grid;
  grid.bits = bits;
  grid.sym = sym;
  gpu->quant_params(rows, cols, W.gpu.data() + 3, ld, grid, gs.data(), gz.data());
  cpu->quant_params(rows, cols, W.cpu.data() + 3, ld, grid, cs.data(), cz.data());
  EXPECT_EQ(gs.to_host(), cs.to_host()) << "scales, bits " << bits << " sym " << sym;
  EXPECT_EQ(gz.to_host(), cz.to_host()) << "zeros, bits " << bits << " sym " << sym;
}

INSTANTIATE_TEST_SUITE_P(BitsAndSymmetry, CudaVsCpuQuantParams,
                         ::testing::Combine(::testing::Values(2, 3, 4, 8), ::testing::Bool()));

TEST_F(CudaVsCpu, QuantParamsMseClipPicksTheSameGridPoint) {
  for (bool sym : {false, true}) {
    const int64_t rows = 96, cols = 128;
    Twin W(*gpu, *cpu, quant_rows(rows, cols, 51));
    Buffer gs(*gpu, rows), gz(*gpu, rows), cs(*cpu, rows), cz(*cpu, rows);
    QuantGrid grid;
    grid.bits = 3;
    grid.sym = sym;
    grid.mse_clip = true;
    gpu->quant_params(rows, cols, W.gpu.data(), cols, grid, gs.data(), gz.data());
    cpu->quant_params(rows, cols, W.cpu.data(), cols, grid, cs.data(), cz.data());
    // The grid point's error is a double sum in another order of powers that
    // may differ by an ulp: a near-tie may go the other way in rare rows.
    EXPECT_GE(test::identical_fraction(gs.to_host(), cs.to_host()), test::kMinIdenticalCodes);
    EXPECT_GE(test::identical_fraction(gz.to_host(), cz.to_host()), test::kMinIdenticalCodes);
  }
}

TEST_F(CudaVsCpu, QuantizeRtnIdenticalWithGroupsAndStrides) {
  const int64_t rows = 33, cols = 77, ldw = 80, gsize = 16, groups = 5;
  const auto w = quant_rows(rows, ldw, 60);
  std::vector<int32_t> col_group(cols);
  for (int64_t c = 0; c < cols; ++c) col_group[c] = static_cast<int32_t>(c / gsize);
  // Parameters from the CPU, the same for both sides.
  std::vector<float> scale(groups * rows), zero(groups * rows);
  {
    Buffer wc(*cpu, w), s(*cpu, groups * rows), z(*cpu, groups * rows);
    QuantGrid grid;
    for (int64_t g = 0; g < groups; ++g)
      cpu->quant_params(rows, std::min(gsize, cols - g * gsize), wc.data() + g * gsize, ldw, grid,
                        s.data() + g * rows, z.data() + g * rows);
    scale = s.to_host();
    zero = z.to_host();
  }
  Twin W(*gpu, *cpu, w), S(*gpu, *cpu, scale), Z(*gpu, *cpu, zero);
  const int64_t ldc = cols + 1, ldq = cols + 3;
  ByteBuffer gc(*gpu, rows * ldc), cc(*cpu, rows * ldc);
  Buffer gq(*gpu, rows * ldq), cq(*cpu, rows * ldq);
  gpu->quantize_rtn(rows, cols, W.gpu.data(), ldw, S.gpu.data(), Z.gpu.data(), col_group.data(), 15,
                    gc.data(), ldc, gq.data(), ldq);
  cpu->quantize_rtn(rows, cols, W.cpu.data(), ldw, S.cpu.data(), Z.cpu.data(), col_group.data(), 15,
                    cc.data(), ldc, cq.data(), ldq);
  EXPECT_EQ(gc.to_host(), cc.to_host());
  EXPECT_EQ(gq.to_host(), cq.to_host());

  // Either output may be null.
  Buffer gq2(*gpu, rows * ldq);
  gpu->quantize_rtn(rows, cols, W.gpu.data(), ldw, S.gpu.data(), Z.gpu.data(), col_group.data(), 15,
                    nullptr, 0, gq2.data(), ldq);
  EXPECT_EQ(gq2.to_host(), cq.to_host());
}

// ---- BLOOM forward ops ------------------------------------------------------------

TEST_F(CudaVsCpu, LayerNormIncludingAliasingAndLargeMeans) {
  const int64_t rows = 9, cols = 300;
  auto x = random_vector(rows * cols, 70, -3.0f, 3.0f);
  for (int64_t c = 0; c < cols; ++c) x[4 * cols + c] += 1000.0f;  // catastrophic for E[x^2]-E[x]^2
  Twin X(*gpu, *cpu, x), G(*gpu, *cpu, random_vector(cols, 71, 0.5f, 1.5f));
  Twin B(*gpu, *cpu, random_vector(cols, 72));
  Buffer gy(*gpu, rows * cols), cy(*cpu, rows * cols);
  gpu->layer_norm(rows, cols, X.gpu.data(), G.gpu.data(), B.gpu.data(), 1e-5f, gy.data());
  cpu->layer_norm(rows, cols, X.cpu.data(), G.cpu.data(), B.cpu.data(), 1e-5f, cy.data());
  expect_close(gy.to_host(), cy.to_host(), test::kNmseReorderedDouble, "layer_norm");
  gpu->layer_norm(rows, cols, X.gpu.data(), G.gpu.data(), B.gpu.data(), 1e-5f, X.gpu.data());
  cpu->layer_norm(rows, cols, X.cpu.data(), G.cpu.data(), B.cpu.data(), 1e-5f, X.cpu.data());
  expect_close(X.gpu.to_host(), X.cpu.to_host(), test::kNmseReorderedDouble, "layer_norm in place");
}

TEST_F(CudaVsCpu, GeluAddAddBias) {
  const int64_t rows = 13, cols = 771;
  Twin X(*gpu, *cpu, random_vector(rows * cols, 80, -8.0f, 8.0f));
  gpu->gelu(rows * cols, X.gpu.data());
  cpu->gelu(rows * cols, X.cpu.data());
  expect_close(X.gpu.to_host(), X.cpu.to_host(), test::kNmseTranscendental, "gelu");

  Twin Y(*gpu, *cpu, random_vector(rows * cols, 81));
  Twin A(*gpu, *cpu, random_vector(rows * cols, 82)), Bias(*gpu, *cpu, random_vector(cols, 83));
  gpu->add(rows * cols, A.gpu.data(), Y.gpu.data());
  cpu->add(rows * cols, A.cpu.data(), Y.cpu.data());
  EXPECT_EQ(Y.gpu.to_host(), Y.cpu.to_host()) << "add";
  gpu->add_bias(rows, cols, Bias.gpu.data(), Y.gpu.data());
  cpu->add_bias(rows, cols, Bias.cpu.data(), Y.cpu.data());
  EXPECT_EQ(Y.gpu.to_host(), Y.cpu.to_host()) << "add_bias";
}

class CudaVsCpuAttention
    : public CudaVsCpu,
      public ::testing::WithParamInterface<std::tuple<int64_t, int64_t, int64_t, int64_t>> {};

TEST_P(CudaVsCpuAttention, CausalAlibi) {
  const auto [batch, seq, n_head, head_dim] = GetParam();
  const int64_t tokens = batch * seq;
  Twin QKV(*gpu, *cpu, random_vector(tokens * n_head * 3 * head_dim, 90, -2.0f, 2.0f));
  Buffer gc(*gpu, tokens * n_head * head_dim), cc(*cpu, tokens * n_head * head_dim);
  gpu->alibi_attention(batch, seq, n_head, head_dim, QKV.gpu.data(), gc.data());
  cpu->alibi_attention(batch, seq, n_head, head_dim, QKV.cpu.data(), cc.data());
  expect_close(gc.to_host(), cc.to_host(), test::kNmseAttention, "alibi_attention");
}

// n_head 6 and 12: not powers of two, so both slope branches run.
INSTANTIATE_TEST_SUITE_P(Shapes, CudaVsCpuAttention,
                         ::testing::Values(std::make_tuple(2, 37, 6, 16),
                                           std::make_tuple(1, 1, 4, 8),
                                           std::make_tuple(3, 64, 12, 24)));

}  // namespace
}  // namespace gptqd
