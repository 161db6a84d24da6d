// The CUDA backend's pinned host memory and memory accounting against the CPU twin's
// (tests/unit/test_backend_memory.cpp): the same buffers and the same factorization must
// show the same figures, up to the pool's rounding. Skipped, visibly, without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

using test::CudaVsCpu;

// The pool hands out memory in granules; its figures may exceed the bytes asked for.
constexpr int64_t kPoolSlack = int64_t{4} << 20;

TEST_F(CudaVsCpu, PinnedHostMemoryRoundTripsAndIsCounted) {
  const auto v = test::random_vector(1 << 20, 5);
  HostBuffer pinned(*gpu, static_cast<int64_t>(v.size()));
  std::copy(v.begin(), v.end(), pinned.data());
  Buffer dev(*gpu, pinned.size());
  gpu->to_device(dev.data(), pinned.data(), pinned.size());
  HostBuffer back(*gpu, pinned.size());
  gpu->to_host(back.data(), dev.data(), pinned.size());
  EXPECT_TRUE(std::equal(v.begin(), v.end(), back.data()));
  EXPECT_EQ(gpu->memory_stats().host_in_use, 2 * pinned.size() * 4);
}

TEST_F(CudaVsCpu, DeviceFiguresMatchTheCpuTwin) {
  for (Backend* be : {gpu.get(), cpu.get()}) {
    const int64_t base = be->memory_stats().device_in_use;
    Buffer a(*be, 3 << 20);
    ByteBuffer b(*be, 5 << 20);
    const int64_t held = be->memory_stats().device_in_use - base;
    EXPECT_GE(held, (12 << 20) + (5 << 20)) << be->name();
    EXPECT_LE(held, (12 << 20) + (5 << 20) + kPoolSlack) << be->name();
  }
}

TEST_F(CudaVsCpu, FactorizationScratchShowsInThePeakAsOnTheCpu) {
  const int64_t n = 1024;
  std::vector<float> h(static_cast<size_t>(n * n), 0.0f);
  for (int64_t i = 0; i < n; ++i) h[i * n + i] = 2.0f + static_cast<float>(i % 7);
  int64_t extra[2] = {0, 0};
  int k = 0;
  for (Backend* be : {gpu.get(), cpu.get()}) {
    Buffer hd(*be, h);
    be->reset_peak();
    const int64_t before = be->memory_stats().device_in_use;
    ASSERT_TRUE(be->inverse_cholesky_upper(n, hd.data())) << be->name();
    extra[k++] = be->memory_stats().device_peak - before;
  }
  EXPECT_GE(extra[0], 8 * n * n);  // the fp64 copy of H, at least
  EXPECT_LE(extra[0], extra[1] + kPoolSlack) << "cuSOLVER's workspace is small next to 8 n^2";
}

}  // namespace
}  // namespace gptqd
