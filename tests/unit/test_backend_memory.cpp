// Backend::memory_stats on the CPU backend: what `gptqd plan`'s memory model is checked
// against (tests/unit/test_memory_model.cpp), so the counting itself is checked here.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

TEST(BackendMemory, CountsDeviceAllocationsAndTheirPeak) {
  auto be = make_cpu_backend(1);
  const MemoryStats s0 = be->memory_stats();
  EXPECT_EQ(s0.device_in_use, 0);
  {
    Buffer a(*be, 1000);
    ByteBuffer b(*be, 333);
    EXPECT_EQ(be->memory_stats().device_in_use, 4000 + 333);
    { Buffer c(*be, 250); }
    const MemoryStats s = be->memory_stats();
    EXPECT_EQ(s.device_in_use, 4333);
    EXPECT_EQ(s.device_peak, 5333);
    EXPECT_EQ(s.host_in_use, 0);
  }
  EXPECT_EQ(be->memory_stats().device_in_use, 0);
  EXPECT_EQ(be->memory_stats().device_peak, 5333);
  be->reset_peak();
  EXPECT_EQ(be->memory_stats().device_peak, 0);
}

TEST(BackendMemory, HostMemoryIsCountedApartAndUsableForCopies) {
  auto be = make_cpu_backend(1);
  HostBuffer pinned(*be, 512);
  const auto v = test::random_vector(512, 3);
  std::copy(v.begin(), v.end(), pinned.data());
  Buffer dev(*be, 512);
  be->to_device(dev.data(), pinned.data(), 512);
  HostBuffer back(*be, 512);
  be->to_host(back.data(), dev.data(), 512);
  EXPECT_TRUE(std::equal(v.begin(), v.end(), back.data()));
  const MemoryStats s = be->memory_stats();
  EXPECT_EQ(s.host_in_use, 2 * 512 * 4);
  EXPECT_EQ(s.device_in_use, 512 * 4);
  HostBuffer moved = std::move(back);
  EXPECT_EQ(be->memory_stats().host_in_use, 2 * 512 * 4);
}

// The fp64 scratch of the factorization is device memory on CUDA, so the CPU twin counts it:
// 8 n^2 bytes above the fp32 H while it runs.
TEST(BackendMemory, FactorizationScratchShowsInThePeak) {
  auto be = make_cpu_backend(1);
  const int64_t n = 96;
  std::vector<float> h(static_cast<size_t>(n * n), 0.0f);
  for (int64_t i = 0; i < n; ++i) h[i * n + i] = 2.0f + static_cast<float>(i);
  Buffer hd(*be, h);
  be->reset_peak();
  ASSERT_TRUE(be->inverse_cholesky_upper(n, hd.data()));
  const MemoryStats s = be->memory_stats();
  EXPECT_EQ(s.device_in_use, 4 * n * n);
  EXPECT_EQ(s.device_peak, 4 * n * n + 8 * n * n);
}

}  // namespace
}  // namespace gptqd
