// The CPU backend's optimized GPTQ pieces against their plain versions: the
// row-tiled column sweep (gptq_block) bit for bit against a one-row-at-a-time
// fp32 loop of the GptqBlock contract (row counts that do not fill a tile,
// several groups, strides, thread counts), and the factor of H^-1 (one
// Cholesky of the reversed H and a triangular inverse) against its definition
// for odd and even sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/buffer.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/quant_math.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

struct BlockData {
  int64_t rows = 0, count = 0, ldw = 0, ldh = 0, ldc = 0, ldq = 0, lde = 0;
  int maxq = 15;
  std::vector<float> w, h, scale, zero, loss;
  std::vector<int32_t> col_group;
};

BlockData make_block(int64_t rows, int64_t count, int bits, uint32_t seed) {
  BlockData b;
  b.rows = rows;
  b.count = count;
  b.ldw = count + 5;
  b.ldh = count + 3;
  b.ldc = count + 7;
  b.ldq = count + 1;
  b.lde = count + 2;
  b.maxq = (1 << bits) - 1;
  b.w = test::random_vector(rows * b.ldw, seed);
  b.h = test::random_vector(count * b.ldh, seed + 1, -0.05f, 0.05f);
  for (int64_t i = 0; i < count; ++i) b.h[i * b.ldh + i] = 0.5f + 0.003f * i;
  const int64_t groups = 3;
  b.scale = test::random_vector(groups * rows, seed + 2, 0.02f, 0.3f);
  b.zero.resize(groups * rows);
  for (size_t i = 0; i < b.zero.size(); ++i) b.zero[i] = static_cast<float>(i % (b.maxq + 1));
  b.col_group.resize(count);
  for (int64_t i = 0; i < count; ++i) b.col_group[i] = static_cast<int32_t>((i / 40) % groups);
  b.loss = test::random_vector(rows, seed + 3, 0.0f, 1.0f);
  return b;
}

struct BlockOut {
  std::vector<float> w, qw, err, loss;
  std::vector<uint8_t> codes;
};

// The GptqBlock contract, one row at a time, in the same fp32 operations.
BlockOut block_ref(const BlockData& b) {
  BlockOut o;
  o.w = b.w;
  o.qw.assign(b.rows * b.ldq, 0.0f);
  o.err.assign(b.rows * b.lde, 0.0f);
  o.codes.assign(b.rows * b.ldc, 0);
  o.loss = b.loss;
  for (int64_t r = 0; r < b.rows; ++r) {
    float* w = o.w.data() + r * b.ldw;
    double loss = 0;
    for (int64_t i = 0; i < b.count; ++i) {
      const int64_t g = b.col_group[i];
      const float s = b.scale[g * b.rows + r], z = b.zero[g * b.rows + r];
      const float* hrow = b.h.data() + i * b.ldh;
      const float d = hrow[i];
      const float code = quant_code(w[i], s, z, b.maxq);
      const float q = dequant_code(code, s, z);
      const float diff = w[i] - q;
      const float err = diff / d;
      for (int64_t j = i + 1; j < b.count; ++j) {
        const float p = err * hrow[j];
        w[j] = w[j] - p;
      }
      o.codes[r * b.ldc + i] = static_cast<uint8_t>(code);
      o.qw[r * b.ldq + i] = q;
      o.err[r * b.lde + i] = err;
      loss += static_cast<double>(diff * diff / (d * d)) / 2.0;
    }
    o.loss[r] += static_cast<float>(loss);
  }
  return o;
}

BlockOut block_backend(Backend& be, const BlockData& b) {
  Buffer w(be, b.w), h(be, b.h), s(be, b.scale), z(be, b.zero), q(be, b.rows * b.ldq),
      err(be, b.rows * b.lde), loss(be, b.loss);
  ByteBuffer codes(be, b.rows * b.ldc);
  GptqBlock blk;
  blk.rows = b.rows;
  blk.count = b.count;
  blk.w = w.data();
  blk.ldw = b.ldw;
  blk.hinv = h.data();
  blk.ldh = b.ldh;
  blk.scale = s.data();
  blk.zero = z.data();
  blk.col_group = b.col_group.data();
  blk.maxq = b.maxq;
  blk.codes = codes.data();
  blk.ldc = b.ldc;
  blk.qw = q.data();
  blk.ldq = b.ldq;
  blk.err = err.data();
  blk.lde = b.lde;
  blk.loss = loss.data();
  be.gptq_block(blk);
  return {w.to_host(), q.to_host(), err.to_host(), loss.to_host(), codes.to_host()};
}

TEST(GptqKernels, TiledSweepIsTheRowLoopBitForBit) {
  struct Shape {
    int64_t rows, count;
    int bits;
  };
  for (const Shape& sh :
       {Shape{1, 1, 4}, Shape{15, 33, 2}, Shape{16, 128, 4}, Shape{37, 200, 3}, Shape{70, 64, 8}}) {
    const BlockData b = make_block(sh.rows, sh.count, sh.bits, 90 + static_cast<uint32_t>(sh.rows));
    const BlockOut want = block_ref(b);
    for (int threads : {1, 3}) {
      SCOPED_TRACE(::testing::Message() << sh.rows << "x" << sh.count << " w" << sh.bits << ", "
                                        << threads << " threads");
      CpuBackend be(threads);
      const BlockOut got = block_backend(be, b);
      // The columns outside the block (ldw > count) are untouched too.
      EXPECT_EQ(got.w, want.w);
      EXPECT_EQ(got.codes, want.codes);
      EXPECT_EQ(got.qw, want.qw);
      EXPECT_EQ(got.err, want.err);
      EXPECT_EQ(got.loss, want.loss);
    }
  }
}

// U upper with a positive diagonal and U^T U H = I, for sizes whose n^2 is odd
// (the in-place reversal's middle element) and even, on 1 and 3 threads.
TEST(GptqKernels, InverseFactorForAnySize) {
  for (int64_t n : {1, 2, 7, 33, 64}) {
    const auto x = test::random_vector((2 * n + 4) * n, 200 + static_cast<uint32_t>(n));
    std::vector<double> hd(n * n, 0.0);
    for (int64_t t = 0; t < 2 * n + 4; ++t)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) hd[i * n + j] += double(x[t * n + i]) * x[t * n + j];
    std::vector<float> h(hd.begin(), hd.end());
    for (int threads : {1, 3}) {
      SCOPED_TRACE(::testing::Message() << "n " << n << ", " << threads << " threads");
      CpuBackend be(threads);
      std::vector<float> u = h;
      ASSERT_TRUE(be.inverse_cholesky_upper(n, u.data()));
      double worst = 0;
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_GT(u[i * n + i], 0.0f);
        for (int64_t j = 0; j < i; ++j) ASSERT_EQ(u[i * n + j], 0.0f);
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;  // (U^T U H)[i][j]
          for (int64_t k = 0; k < n; ++k) {
            double utu = 0;
            for (int64_t p = 0; p <= std::min(i, k); ++p)
              utu += double(u[p * n + i]) * u[p * n + k];
            s += utu * h[k * n + j];
          }
          worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
        }
      }
      EXPECT_LT(worst, 1e-3);
    }
  }
}

}  // namespace
}  // namespace gptqd
