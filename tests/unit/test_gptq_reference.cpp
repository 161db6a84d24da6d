// gptq_quantize against the PyTorch port of the reference GPTQ (IST-DASLab/gptq
// fasterquant + quant.py, AutoGPTQ's static_groups and g_idx) in fp32:
// tests/fixtures/gptq/, made by scripts/make_gptq_fixtures.py (its docstring
// says how to regenerate them). Each case runs gptq_quantize on the problem's
// weight with the Hessian that gptqd's HessianAccumulator computes from the
// problem's inputs (every token one sample, as `gptqd layer` does), and must
// meet the bar of the issue: >= 99% of codes identical and the total loss
// within 1% of the reference's; g_idx and perm identical; the damp after
// retries identical. The codes are not all identical because the reference
// factorizes H in fp32 where gptqd uses fp64 (and the two Hessians round
// differently): a weight near a rounding boundary can go either way, and the
// error feedback carries a flip to the later columns of that row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "io/model/safetensors.h"
#include "kernels/buffer.h"
#include "tests/test_util.h"
#include "worker/gptq.h"
#include "worker/hessian.h"

namespace gptqd {
namespace {

// Every case of scripts/make_gptq_fixtures.py, with the agreement measured
// when this list was last updated: codes identical, |loss - reference loss| /
// reference loss. (26 cases agree on every code; w8_g32_act differs on 1 code
// of 14000, an 8-bit weight on a rounding boundary.)
const std::vector<std::string> kCases = {
    "w2_g-1",                     // 100%, loss 5.0e-06
    "w2_g32_act",                 // 100%, loss 7.1e-07
    "w2_g128_sym_static",         // 100%, loss 5.7e-06
    "w3_g-1_sym_act",             // 100%, loss 1.0e-07
    "w3_g32_static",              // 100%, loss 4.5e-06
    "w3_g128_act_static",         // 100%, loss 3.0e-08
    "w4_g-1_mse",                 // 100%, loss 3.8e-06
    "w4_g32_sym_act_static",      // 100%, loss 1.2e-07
    "w4_g128",                    // 100%, loss 3.8e-06
    "w4_g128_act",                // 100%, loss 2.9e-07
    "w8_g-1_sym",                 // 100%, loss 5.3e-06
    "w8_g32_act",                 // 99.99%, loss 2.5e-06
    "w8_g128_static",             // 100%, loss 1.7e-06
    "w4_g48_b64",                 // 100%, loss 4.1e-06
    "w3_g48_b64_act",             // 100%, loss 1.5e-08
    "w4_g32_b50_sym_act_static",  // 100%, loss 1.1e-07
    "w2_g48_b64_act_static",      // 100%, loss 1.5e-07
    "w3_g128_mse_sym_act",        // 100%, loss 2.5e-07
    "w4_g-1_sym_mse_small",       // 100%, loss 1.6e-06
    "w3_g32_mse_small",           // 100%, loss 8.0e-07
    "w4_g128_over_cols",          // 100%, loss 1.0e-06
    "w2_g32_b32_act_small",       // 100%, loss 1.4e-06
    "w8_g32_sym_static_small",    // 100%, loss 5.9e-06
    "w4_g32_damp0",               // 100%, loss 1.3e-07
    "w3_g-1_act_damp0",           // 100%, loss 1.9e-06
    "w4_g32_indefinite",          // 100%, loss 3.1e-07
    "w3_g-1_sym_act_indefinite",  // 100%, loss 3.0e-09
};

std::string fixture(const std::string& file) {
  return test::source_path("tests/fixtures/gptq/" + file);
}

int64_t meta_int(const SafetensorsFile& f, const std::string& key) {
  return std::stoll(f.metadata().at(key));
}

GptqOptions case_options(const SafetensorsFile& c, const std::string& name) {
  GptqOptions o;
  o.bits = static_cast<int>(meta_int(c, "bits"));
  o.group_size = meta_int(c, "group_size");
  o.sym = meta_int(c, "sym") != 0;
  o.act_order = meta_int(c, "act_order") != 0;
  o.static_groups = meta_int(c, "static_groups") != 0;
  o.damp_percent = std::stod(c.metadata().at("damp"));
  o.block_size = meta_int(c, "block_size");
  o.mse_clip = meta_int(c, "mse_clip") != 0;
  o.label = "fixture " + name;
  return o;
}

// The problem's Hessian: the stored one, or (2 / tokens) X^T X from its inputs.
std::vector<float> problem_hessian(Backend& be, const SafetensorsFile& p, int64_t cols) {
  if (p.find("hessian")) return p.read_f32("hessian");
  const std::vector<float> x = p.read_f32("inputs");
  const int64_t tokens = static_cast<int64_t>(x.size()) / cols;
  HessianAccumulator acc(be, cols);
  Buffer xd(be, x);
  acc.add(xd.data(), tokens, tokens);
  return acc.to_host();
}

template <typename T>
std::vector<T> read_as(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo* t = f.find(name);
  EXPECT_NE(t, nullptr) << name;
  std::vector<T> v(t ? t->nbytes() / sizeof(T) : 0);
  if (t && !v.empty()) std::memcpy(v.data(), f.data(*t), t->nbytes());
  return v;
}

class GptqFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(GptqFixture, MatchesPyTorchReference) {
  const std::string name = GetParam();
  const SafetensorsFile c = SafetensorsFile::open(fixture("case_" + name + ".safetensors"));
  const SafetensorsFile p =
      SafetensorsFile::open(fixture("problem_" + c.metadata().at("problem") + ".safetensors"));
  const GptqOptions opt = case_options(c, name);
  const TensorInfo* wt = p.find("weight");
  ASSERT_NE(wt, nullptr);
  const int64_t rows = wt->shape[0], cols = wt->shape[1];
  const std::vector<float> w = p.read_f32("weight");

  auto be = make_cpu_backend(2);
  const std::vector<float> h = problem_hessian(*be, p, cols);
  const QuantizedLayer q = gptq_quantize(*be, w.data(), rows, cols, h.data(), opt);

  const auto codes = read_as<uint8_t>(c, "codes");
  const auto scales = read_as<float>(c, "scales");
  const auto g_idx = read_as<int32_t>(c, "g_idx");
  const auto perm = read_as<int32_t>(c, "perm");
  const double ref_loss = read_as<float>(c, "loss").at(0);
  const double ref_damp = read_as<float>(c, "damp").at(0);
  ASSERT_EQ(codes.size(), q.codes.size());
  ASSERT_EQ(scales.size(), q.scales.size());

  int64_t same = 0;
  for (size_t i = 0; i < codes.size(); ++i) same += codes[i] == q.codes[i];
  const double identical = double(same) / double(codes.size());
  const double loss_rel = std::fabs(q.loss - ref_loss) / ref_loss;
  // Scales of groups formed from the updated W move with the codes before
  // them; most stay within a part in 10^4.
  int64_t close = 0;
  for (size_t i = 0; i < scales.size(); ++i)
    close += std::fabs(scales[i] - q.scales[i]) <= 1e-4 * std::fabs(scales[i]);
  const double scales_close = double(close) / double(scales.size());

  std::printf(
      "[ measured ] %-28s codes identical %.4f (%lld of %zu differ)  loss %.6g vs %.6g "
      "(%.2e rel)  scales within 1e-4: %.4f  damp %g\n",
      name.c_str(), identical, static_cast<long long>(codes.size()) - same, codes.size(), q.loss,
      ref_loss, loss_rel, scales_close, q.damp_used);
  RecordProperty("codes_identical", std::to_string(identical));
  RecordProperty("loss_rel_diff", std::to_string(loss_rel));

  EXPECT_GE(identical, 0.99);
  EXPECT_LE(loss_rel, 0.01);
  EXPECT_GE(scales_close, 0.95);
  EXPECT_EQ(q.g_idx, g_idx);
  EXPECT_EQ(q.perm, perm);
  EXPECT_NEAR(q.damp_used, ref_damp, 1e-6 * ref_damp + 1e-9);
}

INSTANTIATE_TEST_SUITE_P(Reference, GptqFixture, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string s = info.param;
                           std::replace(s.begin(), s.end(), '-', 'm');
                           return s;
                         });

// The measure can fail: the same fixture under a wrong setting (a group of 64
// instead of 128, symmetric instead of asymmetric) agrees on few codes.
TEST(GptqFixtures, TheComparisonDetectsAWrongSetting) {
  const SafetensorsFile c = SafetensorsFile::open(fixture("case_w4_g128.safetensors"));
  const SafetensorsFile p = SafetensorsFile::open(fixture("problem_p70x200.safetensors"));
  const int64_t rows = p.find("weight")->shape[0], cols = p.find("weight")->shape[1];
  const std::vector<float> w = p.read_f32("weight");
  auto be = make_cpu_backend(2);
  const std::vector<float> h = problem_hessian(*be, p, cols);
  const auto codes = read_as<uint8_t>(c, "codes");
  for (int variant = 0; variant < 2; ++variant) {
    GptqOptions opt = case_options(c, "w4_g128");
    if (variant == 0) opt.group_size = 64;
    if (variant == 1) opt.sym = true;
    const QuantizedLayer q = gptq_quantize(*be, w.data(), rows, cols, h.data(), opt);
    int64_t same = 0;
    for (size_t i = 0; i < codes.size(); ++i) same += codes[i] == q.codes[i];
    EXPECT_LT(double(same) / double(codes.size()), 0.9) << "variant " << variant;
  }
}

// The list above is the fixture directory: a case the script adds is not
// silently left untested.
TEST(GptqFixtures, EveryCaseFileIsListed) {
  std::set<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(fixture(""))) {
    const std::string f = e.path().filename().string();
    const std::string prefix = "case_", suffix = ".safetensors";
    if (f.rfind(prefix, 0) == 0 && f.size() > prefix.size() + suffix.size())
      files.insert(f.substr(prefix.size(), f.size() - prefix.size() - suffix.size()));
  }
  EXPECT_EQ(files, std::set<std::string>(kCases.begin(), kCases.end()));
}

}  // namespace
}  // namespace gptqd
