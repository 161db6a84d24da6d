// The DeepSeek-V3 forward on the CUDA backend (worker/families/deepseek_forward.h composes
// existing backend ops only): every fixture of tests/fixtures/deepseek run on the GPU matches
// transformers within the CPU's bar (1e-4 relative per block and the logits) and the CPU forward
// within kNmseBlockForward; the one-column strided copy_2d that de-interleaves the rope pairs is
// identical to the CPU's. Skipped, saying so, without a GPU.
#include "tests/forward_golden.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/test_util.h"

namespace gptqd::test {
namespace {

class CudaDeepseek : public CudaVsCpu, public ::testing::WithParamInterface<std::string> {};

TEST_P(CudaDeepseek, ForwardMatchesTransformersAndTheCpu) {
  const Golden g(source_path("tests/fixtures/deepseek/" + GetParam()));
  const Trace on_gpu = run_forward(*gpu, g), on_cpu = run_forward(*cpu, g);
  const std::string report = expect_trace_matches(g, on_gpu, GetParam());
  for (size_t b = 0; b < on_cpu.blocks.size(); ++b)
    expect_close(on_gpu.blocks[b], on_cpu.blocks[b], kNmseBlockForward,
                 "block " + std::to_string(b));
  expect_close(on_gpu.logits, on_cpu.logits, kNmseBlockForward, "logits");
  std::printf("[ relerr   ] cuda %s\n", report.c_str());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaDeepseek,
                         ::testing::Values("lora_yarn", "plain_q", "groups"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// The rope pairs' gather: one column of many rows at an odd stride, into a packed row.
TEST_F(CudaVsCpu, OneColumnStridedCopyAsTheRopeGather) {
  const int64_t rows = 1000, ld = 19, dim = 8;
  Twin s(*gpu, *cpu, random_vector(static_cast<size_t>(rows * ld), 3));
  Twin d(*gpu, *cpu, std::vector<float>(static_cast<size_t>(rows * dim), 0.0f));
  const auto gather = [&](Backend& be, const float* from, float* to) {
    for (int64_t i = 0; i < dim / 2; ++i) {
      be.copy_2d(rows, 1, from + 3 + 2 * i, ld, to + i, dim);
      be.copy_2d(rows, 1, from + 4 + 2 * i, ld, to + dim / 2 + i, dim);
    }
  };
  gather(*gpu, s.gpu.data(), d.gpu.data());
  gather(*cpu, s.cpu.data(), d.cpu.data());
  EXPECT_EQ(d.gpu.to_host(), d.cpu.to_host());
}

}  // namespace
}  // namespace gptqd::test
