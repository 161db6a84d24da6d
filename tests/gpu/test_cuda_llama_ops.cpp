// The Llama / OPT forward ops of the CUDA backend (rms_norm, rope, attention
// with grouped KV heads, silu_mul, relu) against their CPU twins on the same
// random inputs, with the named tolerances of gpu_test_util.h. Shapes are odd
// on purpose: rows not a multiple of 32, head_dim 64 and 80, 9 query heads
// over 3 KV heads, sequences of 1, 17 and 130 tokens, batches of 2. Where the
// kernel repeats the CPU's per-element arithmetic in the same order (rope,
// relu) the results must be identical. Skipped, visibly, without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <iterator>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/attention_scratch.h"
#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "base/check.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

using test::expect_close;
using test::random_vector;
using test::Twin;

class CudaVsCpuLlama : public test::CudaVsCpu {};

// ---- rms_norm ---------------------------------------------------------------------

TEST_F(CudaVsCpuLlama, RmsNormOddShapesLargeAndTinyRowsAndAliasing) {
  // (rows, cols): hidden sizes around a block's 256 threads, and Qwen3's
  // per-head q/k norm (rows = tokens * heads, cols = head_dim).
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {37, 300}, {5, 4099}, {3, 1}, {17 * 9, 64}, {2 * 130 * 3, 80}};
  for (const auto& [rows, cols] : shapes) {
    const std::string what = "rms_norm " + std::to_string(rows) + "x" + std::to_string(cols);
    auto x = random_vector(rows * cols, 100 + static_cast<uint32_t>(cols), -3.0f, 3.0f);
    if (rows > 2) {
      for (int64_t c = 0; c < cols; ++c) x[1 * cols + c] *= 1e4f;   // large
      for (int64_t c = 0; c < cols; ++c) x[2 * cols + c] *= 1e-4f;  // small next to eps
    }
    Twin X(*gpu, *cpu, x), G(*gpu, *cpu, random_vector(cols, 101, 0.5f, 1.5f));
    Buffer gy(*gpu, rows * cols), cy(*cpu, rows * cols);
    gpu->rms_norm(rows, cols, X.gpu.data(), G.gpu.data(), 1e-6f, gy.data());
    cpu->rms_norm(rows, cols, X.cpu.data(), G.cpu.data(), 1e-6f, cy.data());
    expect_close(gy.to_host(), cy.to_host(), test::kNmseReorderedDouble, what);
    gpu->rms_norm(rows, cols, X.gpu.data(), G.gpu.data(), 1e-5f, X.gpu.data());
    cpu->rms_norm(rows, cols, X.cpu.data(), G.cpu.data(), 1e-5f, X.cpu.data());
    expect_close(X.gpu.to_host(), X.cpu.to_host(), test::kNmseReorderedDouble, what + " in place");
  }
}

// ---- rope -------------------------------------------------------------------------

// Llama's tables: inv_freq[i] = base^(-2i / head_dim), angle = p * inv_freq[i].
void rope_tables(int64_t seq, int64_t head_dim, std::vector<float>& cos, std::vector<float>& sin) {
  const int64_t half = head_dim / 2;
  cos.resize(seq * half);
  sin.resize(seq * half);
  for (int64_t p = 0; p < seq; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = p * std::pow(10000.0, -2.0 * i / head_dim);
      cos[p * half + i] = static_cast<float>(std::cos(angle));
      sin[p * half + i] = static_cast<float>(std::sin(angle));
    }
}

class CudaVsCpuRope
    : public test::CudaVsCpu,
      public ::testing::WithParamInterface<std::tuple<int64_t, int64_t, int64_t, int64_t>> {};

TEST_P(CudaVsCpuRope, IdenticalToCpu) {
  const auto [batch, seq, n_heads, head_dim] = GetParam();
  const int64_t tokens = batch * seq;
  std::vector<float> cos, sin;
  rope_tables(seq, head_dim, cos, sin);
  Twin X(*gpu, *cpu, random_vector(tokens * n_heads * head_dim, 110, -4.0f, 4.0f));
  Twin C(*gpu, *cpu, cos), S(*gpu, *cpu, sin);
  gpu->rope(tokens, seq, n_heads, head_dim, X.gpu.data(), C.gpu.data(), S.gpu.data());
  cpu->rope(tokens, seq, n_heads, head_dim, X.cpu.data(), C.cpu.data(), S.cpu.data());
  // rope_pair's two products and a sum each side, not fused (--fmad=false).
  EXPECT_EQ(X.gpu.to_host(), X.cpu.to_host());
}

// 9 query heads and 3 KV heads of one layer; seq 1 is position 0 only.
INSTANTIATE_TEST_SUITE_P(Shapes, CudaVsCpuRope,
                         ::testing::Values(std::make_tuple(2, 17, 9, 64),
                                           std::make_tuple(2, 17, 3, 80),
                                           std::make_tuple(2, 1, 9, 80),
                                           std::make_tuple(2, 130, 3, 64)));

// ---- attention --------------------------------------------------------------------

// (batch, seq, n_head, n_kv_head, head_dim)
using AttentionShape = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>;

class CudaVsCpuGqaAttention : public test::CudaVsCpu,
                              public ::testing::WithParamInterface<AttentionShape> {};

void compare_attention(Backend& gpu, Backend& cpu, const AttentionShape& shape, float scale) {
  const auto [batch, seq, n_head, n_kv_head, head_dim] = shape;
  const int64_t tokens = batch * seq;
  Twin Q(gpu, cpu, random_vector(tokens * n_head * head_dim, 120, -2.0f, 2.0f));
  Twin K(gpu, cpu, random_vector(tokens * n_kv_head * head_dim, 121, -2.0f, 2.0f));
  Twin V(gpu, cpu, random_vector(tokens * n_kv_head * head_dim, 122, -2.0f, 2.0f));
  Buffer gc(gpu, tokens * n_head * head_dim), cc(cpu, tokens * n_head * head_dim);
  gpu.attention(batch, seq, n_head, n_kv_head, head_dim, Q.gpu.data(), K.gpu.data(), V.gpu.data(),
                scale, gc.data());
  cpu.attention(batch, seq, n_head, n_kv_head, head_dim, Q.cpu.data(), K.cpu.data(), V.cpu.data(),
                scale, cc.data());
  expect_close(gc.to_host(), cc.to_host(), test::kNmseAttention,
               "attention b" + std::to_string(batch) + " s" + std::to_string(seq) + " h" +
                   std::to_string(n_head) + "/" + std::to_string(n_kv_head) + " d" +
                   std::to_string(head_dim) + " scale " + std::to_string(scale));
}

TEST_P(CudaVsCpuGqaAttention, CausalGroupedHeads) {
  const int64_t head_dim = std::get<4>(GetParam());
  compare_attention(*gpu, *cpu, GetParam(), 1.0f / std::sqrt(static_cast<float>(head_dim)));
  compare_attention(*gpu, *cpu, GetParam(), 0.3f);  // the scale is a parameter, not 1/sqrt(d)
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaVsCpuGqaAttention,
    ::testing::Values(AttentionShape{2, 17, 9, 3, 64},    // GQA, 3 query heads per KV head
                      AttentionShape{2, 130, 9, 3, 80},   // seq past a softmax block
                      AttentionShape{2, 1, 9, 3, 80},     // one token: weights exactly 1
                      AttentionShape{2, 17, 6, 6, 64},    // no grouping (OPT): one run per chunk
                      AttentionShape{1, 33, 8, 1, 80}));  // multi-query: one KV head

// Long enough that one sequence's scores exceed kMaxScoreBytes: the heads go
// in chunks of 4, which cut the KV groups of 3 (runs {0,1,2} {3} | {4,5} {6,7}
// | {8}), the one path the short shapes above do not take.
TEST_F(CudaVsCpuLlama, GqaAttentionHeadChunksThatCutKvGroups) {
  const AttentionShape shape{1, 8192, 9, 3, 64};
  ASSERT_EQ(attention_head_chunk(8192, 9), 4);
  compare_attention(*gpu, *cpu, shape, 0.125f);
}

TEST_F(CudaVsCpuLlama, GqaAttentionRejectsHeadsNotAMultipleOfKvHeads) {
  Buffer q(*gpu, 4 * 9 * 8), kv(*gpu, 4 * 4 * 8), ctx(*gpu, 4 * 9 * 8);
  EXPECT_THROW(gpu->attention(1, 4, 9, 4, 8, q.data(), kv.data(), kv.data(), 1.0f, ctx.data()),
               Error);
}

// ---- silu_mul, relu ---------------------------------------------------------------

TEST_F(CudaVsCpuLlama, SiluMulIncludingSaturatedGates) {
  const int64_t rows = 13, cols = 771;
  auto gate = random_vector(rows * cols, 130, -12.0f, 12.0f);
  // Where exp(-x) overflows (x < -88.7) silu is -0; where it underflows, x.
  const float extremes[] = {-1e4f, -100.0f, -89.0f, -88.0f, 88.0f, 100.0f, 1e4f, 0.0f, -0.0f};
  for (size_t i = 0; i < std::size(extremes); ++i) gate[i * 97] = extremes[i];
  Twin G(*gpu, *cpu, gate), U(*gpu, *cpu, random_vector(rows * cols, 131, -3.0f, 3.0f));
  gpu->silu_mul(rows * cols, G.gpu.data(), U.gpu.data());
  cpu->silu_mul(rows * cols, G.cpu.data(), U.cpu.data());
  expect_close(G.gpu.to_host(), G.cpu.to_host(), test::kNmseTranscendental, "silu_mul");
}

TEST_F(CudaVsCpuLlama, ReluIdenticalIncludingSignedZeroAndNaN) {
  auto x = random_vector(4099, 140, -5.0f, 5.0f);
  x[0] = -0.0f;
  x[1] = std::numeric_limits<float>::quiet_NaN();  // x > 0 is false: 0 on both sides
  x[2] = -std::numeric_limits<float>::infinity();
  x[3] = std::numeric_limits<float>::infinity();
  Twin X(*gpu, *cpu, x);
  gpu->relu(4099, X.gpu.data());
  cpu->relu(4099, X.cpu.data());
  EXPECT_EQ(X.gpu.to_host(), X.cpu.to_host());
}

}  // namespace
}  // namespace gptqd
