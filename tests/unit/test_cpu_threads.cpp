// The CPU backend's threads (kernels/cpu/cpu_parallel.h, cpu_tiles.h): the products split into
// tiles, the attention's heads and the pointwise ops give the same bits at 1, 2, 3 and 8
// threads, on shapes that do not divide into the tiles, and the tiled products are still the
// right products. A control shows that the bit comparison is not vacuous: the same product
// summed in another order (its inner dimension in two parts, what a thread split along k
// would do) differs from the 1-thread result.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_blas.h"
#include "kernels/cpu/cpu_parallel.h"
#include "kernels/cpu/cpu_tiles.h"
#include "tests/test_util.h"
#include "worker/gptq.h"

namespace gptqd {
namespace {

using test::random_vector;

constexpr int kThreadCounts[] = {2, 3, 8};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

int64_t count_differing(const std::vector<float>& a, const std::vector<float>& b) {
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

struct GemmCase {
  bool ta, tb;
  int64_t m, n, k;
};

// Odd sizes, none a multiple of the tile alignment, each split into several tiles (checked
// below), with leading dimensions wider than the operands.
const GemmCase kGemmCases[] = {
    {false, true, 131, 771, 257},   // a forward linear: C = X W^T
    {false, false, 517, 333, 129},  // the GPTQ trailing update's layout
    {true, false, 301, 263, 1001},  // X^T Y
    {true, true, 97, 1500, 67},    {false, true, 1000, 65, 300},
};

std::vector<float> run_gemm(int threads, const GemmCase& g, const std::vector<float>& a,
                            int64_t lda, const std::vector<float>& b, int64_t ldb,
                            const std::vector<float>& c0, int64_t ldc) {
  CpuBackend be(threads);
  Buffer ad(be, a), bd(be, b), cd(be, c0);
  be.gemm(g.ta, g.tb, g.m, g.n, g.k, 0.75f, ad.data(), lda, bd.data(), ldb, -0.5f, cd.data(), ldc);
  return cd.to_host();
}

TEST(CpuBackendThreadsGemm, BitIdenticalForAnyThreadCountAndCorrect) {
  uint32_t seed = 100;
  for (const GemmCase& g : kGemmCases) {
    SCOPED_TRACE(::testing::Message()
                 << g.m << "x" << g.n << "x" << g.k << " ta " << g.ta << " tb " << g.tb);
    const cpu::GemmTiles t = cpu::gemm_tiles(g.m, g.n, g.k);
    EXPECT_GE(t.count_m * t.count_n, 4) << "the case should split into several tiles";
    const int64_t lda = (g.ta ? g.m : g.k) + 3, ldb = (g.tb ? g.k : g.n) + 5, ldc = g.n + 7;
    const auto a = random_vector((g.ta ? g.k : g.m) * lda, ++seed);
    const auto b = random_vector((g.tb ? g.n : g.k) * ldb, ++seed);
    const auto c0 = random_vector(g.m * ldc, ++seed);
    const auto one = run_gemm(1, g, a, lda, b, ldb, c0, ldc);
    for (int threads : kThreadCounts)
      EXPECT_TRUE(same_bits(one, run_gemm(threads, g, a, lda, b, ldb, c0, ldc)))
          << threads << " threads";

    // The tiles compute the product: every element against a double sum, and the padding
    // between rows of C (ldc > n) untouched.
    double worst = 0;
    for (int64_t i = 0; i < g.m; ++i) {
      for (int64_t j = 0; j < g.n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < g.k; ++p)
          s += double(g.ta ? a[p * lda + i] : a[i * lda + p]) *
               double(g.tb ? b[j * ldb + p] : b[p * ldb + j]);
        worst = std::max(worst, std::fabs(one[i * ldc + j] - (0.75 * s - 0.5 * c0[i * ldc + j])));
      }
      for (int64_t j = g.n; j < ldc; ++j) ASSERT_EQ(one[i * ldc + j], c0[i * ldc + j]);
    }
    EXPECT_LT(worst, 1e-5 * g.k);
  }
}

// The control: k summed in two parts (the second added to the first through beta = 1) is the
// same product in another order, and differs in the last bits: an implementation that split k
// between threads would fail the comparison above.
TEST(CpuBackendThreadsGemm, ControlAnotherSummationOrderDiffers) {
  const GemmCase g = kGemmCases[0];
  const int64_t lda = g.k, ldb = g.k, ldc = g.n, half = g.k / 3;
  const auto a = random_vector(g.m * lda, 201);
  const auto b = random_vector(g.n * ldb, 202);
  const std::vector<float> zero(static_cast<size_t>(g.m * ldc), 0.0f);
  CpuBackend be(1);
  Buffer ad(be, a), bd(be, b), whole(be, zero), split(be, zero);
  be.gemm(false, true, g.m, g.n, g.k, 1.0f, ad.data(), lda, bd.data(), ldb, 0.0f, whole.data(),
          ldc);
  be.gemm(false, true, g.m, g.n, half, 1.0f, ad.data(), lda, bd.data(), ldb, 0.0f, split.data(),
          ldc);
  be.gemm(false, true, g.m, g.n, g.k - half, 1.0f, ad.data() + half, lda, bd.data() + half, ldb,
          1.0f, split.data(), ldc);
  const auto w = whole.to_host(), s = split.to_host();
  const int64_t differing = count_differing(w, s);
  EXPECT_GT(differing, g.m * g.n / 10) << "summation order should show in the bits";
  for (size_t i = 0; i < w.size(); ++i) ASSERT_NEAR(w[i], s[i], 1e-4) << i;  // the same product
}

TEST(CpuBackendThreadsXtx, BitIdenticalForAnyThreadCountAndCorrect) {
  for (const auto& [n, d] : std::vector<std::pair<int64_t, int64_t>>{{129, 1031}, {1000, 600}}) {
    SCOPED_TRACE(::testing::Message() << "n " << n << " d " << d);
    const int64_t ts = cpu::xtx_tile(d, n);
    EXPECT_GE((d + ts - 1) / ts, 3) << "the case should split into several tiles";
    const auto x = random_vector(n * d, 300 + static_cast<uint32_t>(d));
    auto h0 = random_vector(d * d, 400 + static_cast<uint32_t>(d));
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < i; ++j) h0[i * d + j] = h0[j * d + i];
    auto run = [&](int threads) {
      CpuBackend be(threads);
      Buffer xd(be, x), hd(be, h0);
      be.xtx(n, d, xd.data(), 0.5f, 2.0f, hd.data());
      return hd.to_host();
    };
    const auto one = run(1);
    for (int threads : kThreadCounts) EXPECT_TRUE(same_bits(one, run(threads))) << threads;
    double worst = 0;
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j) {
        ASSERT_EQ(one[i * d + j], one[j * d + i]) << i << "," << j;
        if (j < i || (i * 7 + j) % 5 != 0) continue;  // a fifth of the upper triangle
        double s = 0;
        for (int64_t t = 0; t < n; ++t) s += double(x[t * d + i]) * x[t * d + j];
        worst = std::max(worst, std::fabs(one[i * d + j] - (0.5 * h0[i * d + j] + 2.0 * s)));
      }
    EXPECT_LT(worst, 1e-5 * n);
  }
}

TEST(CpuBackendThreadsAttention, BitIdenticalForAnyThreadCount) {
  const int64_t batch = 3, seq = 97, heads = 6, kv_heads = 2, hd = 24;
  const auto qkv = random_vector(batch * seq * heads * 3 * hd, 501);
  const auto q = random_vector(batch * seq * heads * hd, 502);
  const auto kv = random_vector(batch * seq * kv_heads * hd, 503);
  auto run = [&](int threads) {
    CpuBackend be(threads);
    Buffer qkvd(be, qkv), qd(be, q), kd(be, kv), ctx(be, batch * seq * heads * hd),
        ctx2(be, batch * seq * heads * hd);
    be.alibi_attention(batch, seq, heads, hd, qkvd.data(), ctx.data());
    be.attention(batch, seq, heads, kv_heads, hd, qd.data(), kd.data(), kd.data(), 0.2f,
                 ctx2.data());
    auto out = ctx.to_host(), out2 = ctx2.to_host();
    out.insert(out.end(), out2.begin(), out2.end());
    return out;
  };
  const auto one = run(1);
  for (int threads : kThreadCounts) EXPECT_TRUE(same_bits(one, run(threads))) << threads;
}

TEST(CpuBackendThreadsPointwise, BitIdenticalForAnyThreadCount) {
  const int64_t rows = 1031, cols = 257;
  const auto x = random_vector(rows * cols, 601, -4.0f, 4.0f);
  const auto y = random_vector(rows * cols, 602);
  const auto gamma = random_vector(cols, 603), beta = random_vector(cols, 604);
  auto run = [&](int threads) {
    CpuBackend be(threads);
    Buffer xd(be, x), yd(be, y), g(be, gamma), bt(be, beta), out(be, rows * cols),
        out2(be, rows * cols);
    be.layer_norm(rows, cols, xd.data(), g.data(), bt.data(), 1e-5f, out.data());
    be.rms_norm(rows, cols, xd.data(), g.data(), 1e-6f, out2.data());
    be.add_bias(rows, cols, bt.data(), out.data());
    be.gelu(rows * cols, out.data());
    be.add(rows * cols, yd.data(), out.data());
    be.silu_mul(rows * cols, out2.data(), yd.data());
    be.relu(rows * cols, out2.data());
    auto r = out.to_host(), r2 = out2.to_host();
    r.insert(r.end(), r2.begin(), r2.end());
    return r;
  };
  const auto one = run(1);
  for (int threads : kThreadCounts) EXPECT_TRUE(same_bits(one, run(threads))) << threads;
}

// A whole layer through gptq_quantize (Hessian, factorization below kThreadedFactorOrder,
// sweep with its trailing GEMMs, act_order on): the same codes, parameters and loss at any
// thread count.
TEST(CpuBackendThreadsGptq, LayerBitIdenticalForAnyThreadCount) {
  const int64_t rows = 300, cols = 520, tokens = 700;
  static_assert(520 < cpu::kThreadedFactorOrder, "the factorization must be single threaded");
  const auto x = random_vector(tokens * cols, 701);
  const auto w = random_vector(rows * cols, 702, -0.05f, 0.05f);
  auto run = [&](int threads) {
    CpuBackend be(threads);
    Buffer xd(be, x), h(be, cols * cols);
    be.xtx(tokens, cols, xd.data(), 0.0f, 2.0f / tokens, h.data());
    GptqOptions opt;
    opt.bits = 3;
    opt.group_size = 64;
    opt.act_order = true;
    opt.label = "threads";
    return gptq_quantize(be, w.data(), rows, cols, h.to_host().data(), opt);
  };
  const QuantizedLayer one = run(1);
  for (int threads : kThreadCounts) {
    const QuantizedLayer q = run(threads);
    EXPECT_EQ(q.codes, one.codes) << threads;
    EXPECT_TRUE(same_bits(q.scales, one.scales)) << threads;
    EXPECT_TRUE(same_bits(q.zeros, one.zeros)) << threads;
    EXPECT_EQ(q.loss, one.loss) << threads;
  }
}

// The worker pool: every item once; an exception in any part reaches the caller after all
// parts returned and the pool runs the next loop; a loop inside a loop runs on its own thread
// (no deadlock, no more threads than asked for).
TEST(CpuBackendThreadsPool, EveryItemOnceExceptionsAndNestedLoops) {
  for (int threads : {2, 3, 8}) {
    std::vector<std::atomic<int>> hits(1000);
    cpu::parallel_tasks(1000, threads, [&](int w, int64_t i) {
      ASSERT_LT(w, threads);
      hits[static_cast<size_t>(i)]++;
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);

    EXPECT_THROW(cpu::parallel_for(64, threads, cpu::kMinParallelWork,
                                   [&](int64_t b, int64_t) {
                                     if (b > 0) throw std::runtime_error("part");
                                   }),
                 std::runtime_error);

    std::atomic<int64_t> inner{0};
    std::mutex m;
    std::set<std::thread::id> ids;
    cpu::parallel_for(threads, threads, cpu::kMinParallelWork, [&](int64_t b, int64_t e) {
      {
        std::lock_guard<std::mutex> lock(m);
        ids.insert(std::this_thread::get_id());
      }
      const std::thread::id me = std::this_thread::get_id();
      for (int64_t i = b; i < e; ++i)
        cpu::parallel_for(100, threads, cpu::kMinParallelWork, [&](int64_t b2, int64_t e2) {
          EXPECT_EQ(std::this_thread::get_id(), me) << "a nested loop stays on its thread";
          inner += e2 - b2;
        });
    });
    EXPECT_EQ(inner.load(), 100 * threads);
    EXPECT_LE(static_cast<int>(ids.size()), threads);
  }
}

// What the log says at start: the backend's threads, the BLAS library, one BLAS thread per
// call outside the factorization, and the BLAS left at one thread afterwards.
TEST(CpuBackendThreadsLog, SaysWhatEachLibraryRuns) {
  CpuBackend be(3);
  const std::string line = be.threading();
  EXPECT_EQ(line.rfind("3 for gptqd's loops", 0), 0u) << line;
  EXPECT_NE(line.find("OpenBLAS"), std::string::npos) << line;
  EXPECT_NE(line.find(": 1 per call inside those tiles"), std::string::npos) << line;
  EXPECT_NE(be.threading().find(": 1 per call inside those tiles"), std::string::npos)
      << "the BLAS left at one thread";
}

}  // namespace
}  // namespace gptqd
