// FP8 e4m3fn decoding and DeepSeek-V3's 128 x 128 block dequantization (kernels/fp8.h) against
// torch's own float8_e4m3fn values: tests/fixtures/fp8/fp8_blocks.safetensors, made by
// scripts/make_fp8_fixtures.py (its docstring says how to regenerate it).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "base/check.h"
#include "io/model/safetensors.h"
#include "kernels/dtype.h"
#include "kernels/fp8.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

SafetensorsFile fixture() {
  return SafetensorsFile::open(test::source_path("tests/fixtures/fp8/fp8_blocks.safetensors"));
}

bool same_bits(float a, float b) {
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y || (std::isnan(a) && std::isnan(b));
}

struct Case {
  std::vector<uint8_t> w;
  std::vector<float> scale, out_f32, out_bf16;
  int64_t rows = 0, cols = 0, srows = 0, scols = 0;
};

Case load_case() {
  const SafetensorsFile f = fixture();
  Case c;
  const TensorInfo& w = *f.find("weight");
  EXPECT_EQ(w.dtype, DType::F8_E4M3);
  c.rows = w.shape[0];
  c.cols = w.shape[1];
  c.w.assign(f.data(w), f.data(w) + c.rows * c.cols);
  const TensorInfo& s = *f.find("weight_scale_inv");
  c.srows = s.shape[0];
  c.scols = s.shape[1];
  c.scale = f.read_f32("weight_scale_inv");
  c.out_f32 = f.read_f32("out_f32");
  c.out_bf16 = f.read_f32("out_bf16");
  return c;
}

// Number of elements of `got` whose bits differ from `want`.
int64_t mismatches(const std::vector<float>& got, const std::vector<float>& want) {
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) bad += same_bits(got[i], want[i]) ? 0 : 1;
  return bad;
}

TEST(Fp8, EveryCodeDecodesAsTorchDoes) {
  const SafetensorsFile f = fixture();
  const std::vector<float> decoded = f.read_f32("decoded");
  ASSERT_EQ(decoded.size(), 256u);
  int nan = 0;
  for (int code = 0; code < 256; ++code) {
    const float v = e4m3fn_to_f32(static_cast<uint8_t>(code));
    EXPECT_TRUE(same_bits(v, decoded[code]))
        << "code " << code << ": " << v << " vs " << decoded[code];
    nan += std::isnan(v) ? 1 : 0;
  }
  EXPECT_EQ(nan, 2);  // 0x7f and 0xff only
  EXPECT_EQ(e4m3fn_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3fn_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  // The conversion of a whole tensor goes through the same decoding.
  std::vector<uint8_t> codes(256);
  for (int i = 0; i < 256; ++i) codes[i] = static_cast<uint8_t>(i);
  std::vector<float> out(256);
  convert_to_f32(DType::F8_E4M3, codes.data(), codes.size(), out.data());
  EXPECT_EQ(mismatches(out, decoded), 0);
}

TEST(Fp8, BlockDequantizationMatchesTorchOnOddShapes) {
  const Case c = load_case();
  ASSERT_EQ(c.rows, 130);
  ASSERT_EQ(c.cols, 259);
  std::vector<float> out(c.w.size());
  dequantize_fp8_blocks(c.w.data(), c.rows, c.cols, c.scale.data(), c.srows, c.scols, kFp8Block,
                        false, out.data(), "weight");
  EXPECT_EQ(mismatches(out, c.out_f32), 0);
  dequantize_fp8_blocks(c.w.data(), c.rows, c.cols, c.scale.data(), c.srows, c.scols, kFp8Block,
                        true, out.data(), "weight");
  EXPECT_EQ(mismatches(out, c.out_bf16), 0);
}

// Mutation control: the scales indexed by the transposed block (row block from the column)
// or a block of 64 disagree with torch on most elements, so the comparison above can fail.
TEST(Fp8, ControlWrongBlockIndexingDisagrees) {
  const Case c = load_case();
  std::vector<float> out(c.w.size());
  std::vector<float> transposed = {c.scale[0], c.scale[3], c.scale[1],
                                   c.scale[4], c.scale[2], c.scale[5]};
  dequantize_fp8_blocks(c.w.data(), c.rows, c.cols, transposed.data(), c.srows, c.scols, kFp8Block,
                        false, out.data(), "weight");
  const int64_t bad = mismatches(out, c.out_f32);
  std::printf("control: scales of the wrong block: %lld of %zu elements differ\n",
              static_cast<long long>(bad), out.size());
  EXPECT_GT(bad, static_cast<int64_t>(out.size()) / 2);
}

TEST(Fp8, ScalesOfTheWrongShapeOrValueAreOneLine) {
  const Case c = load_case();
  std::vector<float> out(c.w.size());
  try {
    dequantize_fp8_blocks(c.w.data(), c.rows, c.cols, c.scale.data(), 1, 3, kFp8Block, false,
                          out.data(), "layers.3.mlp.experts.7.up_proj.weight");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "layers.3.mlp.experts.7.up_proj.weight: FP8 block scales have shape [1, 3], but a "
                 "[130, 259] weight in blocks of 128 x 128 needs [2, 3]");
  }
  std::vector<float> bad_scale = c.scale;
  bad_scale[4] = -1.0f;
  EXPECT_THROW(dequantize_fp8_blocks(c.w.data(), c.rows, c.cols, bad_scale.data(), c.srows, c.scols,
                                     kFp8Block, false, out.data(), "w"),
               InputError);
  bad_scale[4] = NAN;
  EXPECT_THROW(dequantize_fp8_blocks(c.w.data(), c.rows, c.cols, bad_scale.data(), c.srows, c.scols,
                                     kFp8Block, false, out.data(), "w"),
               InputError);
}

}  // namespace
}  // namespace gptqd
