// Every family's C++ forward (Llama, Mistral, Qwen2, Qwen3, OPT pre-/post-LN) against HF
// transformers 4.57.6 on the golden fixtures of scripts/make_family_fixtures.py (its docstring
// lists the cases: 9 query / 3 KV heads, head_dim 64 and 80 given, llama3 and linear RoPE,
// biases on and off, tied and untied heads, per-head q/k RMSNorm). Each block's output and
// the logits within 1e-4 relative (tests/forward_golden.h), perplexity within 1e-5.
//
// Mutation controls: the same production code with one rule broken (default RoPE instead of
// the config's, KV heads tiled instead of repeated, q/k biases dropped, OPT positions read
// without their offset of 2) must miss the tolerance by far.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/check.h"
#include "io/job/calibration.h"
#include "tests/delegating_backend.h"
#include "tests/forward_golden.h"
#include "tests/test_util.h"
#include "worker/perplexity.h"

namespace gptqd {
namespace {

using test::Golden;
using test::kRelTol;
using test::rel_err;

std::string family_dir(const std::string& name) {
  return test::source_path("tests/fixtures/families/" + name);
}

// The worst relative error over every block (run alone on transformers' input) and the logits.
double worst_error(Backend& be, const Golden& g) {
  const test::Trace tr = test::run_forward(be, g);
  double worst = rel_err(tr.logits, g.tensor("logits"));
  for (int64_t b = 0; b < g.dims.n_layer; ++b) {
    worst = std::max(
        worst, rel_err(test::run_block_alone(be, g, b), g.tensor("block." + std::to_string(b))));
  }
  return worst;
}

class FamilyForwardGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyForwardGolden, EveryBlockAndTheLogitsMatchTransformers) {
  const Golden g(family_dir(GetParam()));
  auto be = make_cpu_backend(1);
  const test::Trace tr = test::run_forward(*be, g);
  const std::string report = test::expect_trace_matches(g, tr, GetParam());
  std::printf("[ relerr   ] %s\n", report.c_str());
}

TEST_P(FamilyForwardGolden, PerplexityMatchesTransformers) {
  const std::string dir = family_dir(GetParam());
  test::expect_perplexity_matches_transformers(dir, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyForwardGolden,
                         ::testing::Values("llama_gqa", "llama3_rope", "llama_linear", "mistral",
                                           "qwen2", "qwen3", "opt_pre", "opt_post"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// The same models with config.json as transformers 5.25 saves them (rope_parameters, dtype, ...;
// scripts/make_tf5_configs.py): the same weights and goldens through symbolic links.
INSTANTIATE_TEST_SUITE_P(Transformers5, FamilyForwardGolden,
                         ::testing::Values("tf5_llama_gqa", "tf5_llama3_rope", "tf5_llama_linear",
                                           "tf5_mistral", "tf5_qwen2", "tf5_qwen3", "tf5_opt_pre",
                                           "tf5_opt_post"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(FamilyForwardFixtures, CoverWhatTheyClaim) {
  const ModelSpec gqa = HfModel::open(family_dir("llama_gqa")).spec();
  EXPECT_EQ(gqa.n_head, 9);
  EXPECT_EQ(gqa.n_kv_head, 3);
  EXPECT_EQ(gqa.head_dim, 64);
  EXPECT_NE(gqa.head_dim * gqa.n_head, gqa.hidden) << "head_dim given, not derived";
  EXPECT_FALSE(gqa.lm_head.empty()) << "untied head";
  const ModelSpec l3 = HfModel::open(family_dir("llama3_rope")).spec();
  EXPECT_EQ(l3.config.rope_scaling.type, RopeType::kLlama3);
  EXPECT_TRUE(l3.config.qkv_bias && l3.config.o_bias && l3.config.mlp_bias);
  EXPECT_TRUE(l3.lm_head.empty()) << "tied head";
  EXPECT_EQ(HfModel::open(family_dir("llama_linear")).spec().config.rope_scaling.type,
            RopeType::kLinear);
  const ModelSpec q2 = HfModel::open(family_dir("qwen2")).spec();
  EXPECT_TRUE(q2.config.qkv_bias && !q2.config.o_bias);
  const ModelSpec q3 = HfModel::open(family_dir("qwen3")).spec();
  EXPECT_TRUE(q3.config.qk_norm);
  EXPECT_EQ(q3.head_dim, 80);
  EXPECT_TRUE(HfModel::open(family_dir("opt_pre")).spec().config.do_layer_norm_before);
  const ModelSpec post = HfModel::open(family_dir("opt_post")).spec();
  EXPECT_FALSE(post.config.do_layer_norm_before);
  EXPECT_TRUE(post.final_norm.empty()) << "post-LN OPT has no decoder norm";
  // The groups GPTQ quantizes in order.
  std::vector<int> groups;
  for (const LinearSpec& l : gqa.linears) groups.push_back(l.group);
  EXPECT_EQ(groups, (std::vector<int>{0, 0, 0, 1, 2, 2, 3}));
}

// ---- mutation controls ---------------------------------------------------------------------

TEST(FamilyForwardMutants, DefaultRopeInsteadOfLlama3OrLinearFails) {
  auto be = make_cpu_backend(1);
  for (const char* name : {"llama3_rope", "llama_linear"}) {
    Golden g(family_dir(name));
    EXPECT_LE(worst_error(*be, g), kRelTol) << name << " unmutated";
    g.dims.config.rope_scaling = RopeScaling{};
    const double e = worst_error(*be, g);
    EXPECT_GT(e, 100 * kRelTol) << name << ": the RoPE rule is not tested";
    std::printf("[ mutant   ] %s with default RoPE: %.2e\n", name, e);
  }
}

// A 5.x config.json read as before gptqd knew rope_parameters: theta 10000 instead of the file's
// 1e6 (Qwen2, Qwen3, Mistral) or 5e5 with llama3 scaling. Measured before the fix: perplexity
// 0.2% to 1.2% off transformers'.
TEST(FamilyForwardMutants, RopeParametersIgnoredFails) {
  auto be = make_cpu_backend(1);
  for (const char* name : {"tf5_qwen2", "tf5_llama3_rope"}) {
    Golden g(family_dir(name));
    EXPECT_LE(worst_error(*be, g), kRelTol) << name << " unmutated";
    g.dims.config.rope_theta = 10000;
    g.dims.config.rope_scaling = RopeScaling{};
    const double e = worst_error(*be, g);
    EXPECT_GT(e, 100 * kRelTol) << name << ": rope_parameters is not tested";
    std::printf("[ mutant   ] %s without rope_parameters: %.2e\n", name, e);
  }
}

// Query head h reads KV head h % n_kv (tiled) instead of h / (n_head / n_kv) (repeat_kv).
class TiledKvBackend final : public test::DelegatingBackend {
 public:
  void attention(int64_t batch, int64_t seq, int64_t n_head, int64_t n_kv, int64_t hd,
                 const float* q, const float* k, const float* v, float scale, float* ctx) override {
    const int64_t tokens = batch * seq;
    std::vector<float> kk(static_cast<size_t>(tokens * n_head * hd)), vv(kk.size());
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t h = 0; h < n_head; ++h) {
        for (int64_t c = 0; c < hd; ++c) {
          kk[(t * n_head + h) * hd + c] = k[(t * n_kv + h % n_kv) * hd + c];
          vv[(t * n_head + h) * hd + c] = v[(t * n_kv + h % n_kv) * hd + c];
        }
      }
    }
    inner().attention(batch, seq, n_head, n_head, hd, q, kk.data(), vv.data(), scale, ctx);
  }
};

TEST(FamilyForwardMutants, KvHeadsTiledInsteadOfRepeatedFails) {
  const Golden g(family_dir("llama_gqa"));
  TiledKvBackend be;
  const double e = worst_error(be, g);
  EXPECT_GT(e, 100 * kRelTol) << "grouped KV heads are not tested";
  std::printf("[ mutant   ] llama_gqa with tiled KV heads: %.2e\n", e);
}

TEST(FamilyForwardMutants, QkBiasesDroppedFails) {
  auto be = make_cpu_backend(1);
  Golden g(family_dir("qwen2"));
  EXPECT_LE(worst_error(*be, g), kRelTol);
  g.dims.linears[0].bias = false;  // q_proj
  g.dims.linears[1].bias = false;  // k_proj
  const double e = worst_error(*be, g);
  EXPECT_GT(e, 100 * kRelTol) << "the q/k biases are not tested";
  std::printf("[ mutant   ] qwen2 without q/k biases: %.2e\n", e);
}

TEST(FamilyForwardMutants, OptPositionsWithoutOffsetFail) {
  auto be = make_cpu_backend(1);
  const Golden g(family_dir("opt_pre"));
  const ModelSpec& d = g.dims;
  EmbeddingWeights emb = load_embedding_weights(*be, g.model, d);
  // Two rows of zeros in front: the forward's row p + 2 is then the file's row p (offset 0).
  std::vector<float> pos = emb.tensors[1].to_host();
  pos.insert(pos.begin(), static_cast<size_t>(2 * d.hidden), 0.0f);
  emb.tensors[1] = Buffer(*be, pos);
  Buffer h(*be, g.batch * g.seq * d.hidden);
  embed_tokens(*be, d, emb, g.ids, g.seq, h.data());
  const double e = rel_err(h.to_host(), g.tensor("embeddings"));
  EXPECT_GT(e, 100 * kRelTol) << "the position offset is not tested";
  std::printf("[ mutant   ] opt_pre positions at offset 0: %.2e\n", e);
}

}  // namespace
}  // namespace gptqd
