// worker/model_weights.h's LinearWeights on the CPU backend: precision exact keeps the forward's
// weights in fp32, fast in bf16 at half the bytes (the memory the issue asks for), and
// linear_forward on the bf16 copy gives the fast forward_gemm's result on the fp32 weights bit
// for bit. The whole-job check (a fast checkpoint unchanged by the bf16 weights) is in
// docs/numerics.md; the CUDA twin in tests/gpu/test_cuda_precision.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "base/check.h"
#include "kernels/half.h"
#include "tests/test_util.h"
#include "worker/families/family_forward.h"
#include "worker/model_weights.h"

namespace gptqd {
namespace {

TEST(LinearWeights, ExactKeepsFp32AndFastKeepsBf16AtHalfTheBytes) {
  auto be = make_cpu_backend(1);
  LinearWeights lw;
  lw.out = 7;
  lw.in = 13;
  const std::vector<float> host = test::random_vector(lw.out * lw.in, 50);
  const int64_t before = be->memory_stats().device_in_use;

  set_linear_weights(*be, lw, host);
  EXPECT_EQ(lw.w.size(), lw.out * lw.in);
  EXPECT_EQ(lw.w16.size(), 0);
  EXPECT_EQ(lw.w.to_host(), host);
  EXPECT_EQ(be->memory_stats().device_in_use - before, 4 * lw.out * lw.in);

  be->set_precision(Precision::kFast);
  set_linear_weights(*be, lw, host);
  EXPECT_EQ(lw.w.size(), 0);
  ASSERT_EQ(lw.w16.size(), lw.out * lw.in);
  const std::vector<uint16_t> half = lw.w16.to_host();
  for (size_t i = 0; i < host.size(); ++i) ASSERT_EQ(half[i], f32_to_bf16(host[i])) << i;
  EXPECT_EQ(be->memory_stats().device_in_use - before, 2 * lw.out * lw.in);

  // The forward on the bf16 copy is the fast GEMM on the fp32 weights.
  const int64_t tokens = 11;
  const std::vector<float> x = test::random_vector(tokens * lw.in, 51);
  std::vector<float> got(tokens * lw.out), want(tokens * lw.out);
  linear_forward(*be, lw, tokens, x.data(), got.data());
  be->forward_gemm(false, true, tokens, lw.out, lw.in, 1.0f, x.data(), lw.in, host.data(), lw.in,
                   0.0f, want.data(), lw.out);
  EXPECT_EQ(got, want);

  // Back to exact: fp32 again, the bf16 copy freed.
  be->set_precision(Precision::kExact);
  set_linear_weights(*be, lw, host);
  EXPECT_EQ(lw.w16.size(), 0);
  EXPECT_EQ(lw.w.to_host(), host);
  EXPECT_THROW(set_linear_weights(*be, lw, std::vector<float>{1.0f}), Error);
}

}  // namespace
}  // namespace gptqd
