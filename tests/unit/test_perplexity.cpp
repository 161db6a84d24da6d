// Perplexity (worker/perplexity.h) against transformers: the pow2 fixture model of
// scripts/make_fixtures.py on a fixed token stream, with the GPTQ paper's protocol
// (IST-DASLab/gptq bloom.py bloom_eval) computed by torch. Must agree within 0.1%.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "io/job/calibration.h"
#include "io/model/hf_model.h"
#include "io/model/safetensors.h"
#include "base/check.h"
#include "tests/forward_golden.h"
#include "tests/test_util.h"
#include "worker/perplexity.h"

namespace gptqd {
namespace {

std::string pow2_dir() { return test::source_path("tests/fixtures/bloom/pow2"); }

using test::read_raw;

struct PplFixture {
  HfModel model = HfModel::open(pow2_dir());
  ModelSpec dims = model.spec();
  SafetensorsFile ref = SafetensorsFile::open(pow2_dir() + "/perplexity.safetensors");
  std::vector<int32_t> tokens = read_raw<int32_t>(ref, "tokens", DType::I32);
  int64_t seqlen = read_raw<int64_t>(ref, "seqlen", DType::I64).at(0);
  std::vector<double> window_nll = read_raw<double>(ref, "window_nll", DType::F64);
  double ppl = read_raw<double>(ref, "ppl", DType::F64).at(0);
};

TEST(Perplexity, MatchesTransformersWithinATenthOfAPercent) {
  const PplFixture fx;
  int64_t nwin = 0;
  const std::vector<int32_t> windows = eval_windows(fx.tokens, fx.seqlen, &nwin);
  ASSERT_EQ(nwin, static_cast<int64_t>(fx.window_nll.size()));
  ASSERT_GE(nwin, 2);
  ASSERT_NE(fx.tokens.size() % fx.seqlen, 0u)
      << "the fixture should exercise the dropped remainder";

  auto be = make_cpu_backend(1);
  const std::vector<double> nlls = window_nlls(*be, fx.model, fx.dims, windows, fx.seqlen);
  ASSERT_EQ(nlls.size(), fx.window_nll.size());
  for (size_t w = 0; w < nlls.size(); ++w) {
    EXPECT_NEAR(nlls[w], fx.window_nll[w], 1e-5 * std::fabs(fx.window_nll[w])) << "window " << w;
  }
  const double ppl = perplexity_from_nlls(nlls);
  const double rel = std::fabs(ppl - fx.ppl) / fx.ppl;
  EXPECT_LE(rel, 1e-3) << "ours " << ppl << " transformers " << fx.ppl;
  RecordProperty("perplexity",
                 fmt::format("ours {:.6f} transformers {:.6f} rel {:.2e}", ppl, fx.ppl, rel));
  std::printf("[ ppl      ] ours %.6f transformers %.6f relative difference %.2e\n", ppl, fx.ppl,
              rel);
}

TEST(Perplexity, PassesAndMicroBatchesDoNotChangeTheResult) {
  const PplFixture fx;
  int64_t nwin = 0;
  const std::vector<int32_t> windows = eval_windows(fx.tokens, fx.seqlen, &nwin);
  auto be = make_cpu_backend(1);
  const std::vector<double> all = window_nlls(*be, fx.model, fx.dims, windows, fx.seqlen);
  WindowNllOptions opt;
  opt.windows_per_pass = 2;      // passes of 2 and 1 windows
  opt.micro_tokens = fx.seqlen;  // one window per block call
  const std::vector<double> split = window_nlls(*be, fx.model, fx.dims, windows, fx.seqlen, opt);
  ASSERT_EQ(all.size(), split.size());
  for (size_t w = 0; w < all.size(); ++w)
    EXPECT_NEAR(all[w], split[w], 1e-6 * std::fabs(all[w])) << w;

  // Each window's loss depends only on its own tokens: the last window alone gives its loss.
  const std::vector<int32_t> last(windows.end() - fx.seqlen, windows.end());
  const std::vector<double> alone = window_nlls(*be, fx.model, fx.dims, last, fx.seqlen);
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_NEAR(alone[0], all.back(), 1e-6 * std::fabs(all.back()));
}

TEST(Perplexity, TheHookReplacesLinearWeightsBlockByBlock) {
  const PplFixture fx;
  int64_t nwin = 0;
  const std::vector<int32_t> windows = eval_windows(fx.tokens, fx.seqlen, &nwin);
  auto be = make_cpu_backend(1);
  const double base = perplexity_from_nlls(window_nlls(*be, fx.model, fx.dims, windows, fx.seqlen));

  std::vector<int64_t> seen;
  WindowNllOptions same;
  same.hook = [&](int64_t b, BlockWeights& w) {
    seen.push_back(b);
    for (LinearWeights& lw : w.linears) set_linear_weights(*be, lw, lw.host_w);
  };
  EXPECT_EQ(perplexity_from_nlls(window_nlls(*be, fx.model, fx.dims, windows, fx.seqlen, same)),
            base);
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1}));

  // Zeroing the MLP output of the last block moves the perplexity.
  WindowNllOptions zero;
  zero.hook = [&](int64_t b, BlockWeights& w) {
    if (b != fx.dims.n_layer - 1) return;
    LinearWeights& lw = w.linears[3];
    set_linear_weights(*be, lw, std::vector<float>(lw.host_w.size(), 0.0f));
  };
  const double zeroed =
      perplexity_from_nlls(window_nlls(*be, fx.model, fx.dims, windows, fx.seqlen, zero));
  EXPECT_GT(std::fabs(zeroed - base) / base, 1e-2) << base << " vs " << zeroed;

  WindowNllOptions bad;
  bad.hook = [&](int64_t, BlockWeights& w) {
    set_linear_weights(*be, w.linears[0], {1.0f, 2.0f});
  };
  EXPECT_THROW(window_nlls(*be, fx.model, fx.dims, windows, fx.seqlen, bad), Error);
}

TEST(Perplexity, RejectsBadWindowsAndTokens) {
  const PplFixture fx;
  auto be = make_cpu_backend(1);
  EXPECT_THROW(window_nlls(*be, fx.model, fx.dims, {5}, 1), Error);  // seqlen 1: no prediction
  EXPECT_THROW(window_nlls(*be, fx.model, fx.dims, {5, 6, 7}, 2), Error);      // not whole windows
  EXPECT_THROW(window_nlls(*be, fx.model, fx.dims, {5, 300}, 2), InputError);  // vocab is 300
  EXPECT_TRUE(window_nlls(*be, fx.model, fx.dims, {}, 4).empty());
  EXPECT_THROW(perplexity_from_nlls({}), Error);
  EXPECT_DOUBLE_EQ(perplexity_from_nlls({1.0, 3.0}), std::exp(2.0));
}

}  // namespace
}  // namespace gptqd
