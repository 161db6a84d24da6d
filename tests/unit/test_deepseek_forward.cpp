// The DeepSeek-V3 / Kimi-K2 forward (MLA attention, YaRN, the sigmoid router with group-limited
// selection and correction bias, shared experts) against transformers 5.25.0 on the golden
// fixtures of scripts/make_deepseek_fixtures.py (its docstring lists the cases: q_lora_rank set
// and null, YaRN on and off, 9 / 5 / 8 experts in 3 / 1 / 4 groups, top-3 / top-1 / top-2,
// v_head_dim below and above the q/k head width, interleaved and halves RoPE). Each block's
// output and the logits within 1e-4 relative (tests/forward_golden.h), perplexity within 1e-5.
//
// Mutation controls: the same production code with one rule broken (the correction bias dropped,
// the RoPE on the wrong dims or in the other layout, routed_scaling_factor 1, the group limit
// off, YaRN off) must miss the tolerance by far.
#include <gtest/gtest.h>

#include <map>

#include "io/job/calibration.h"
#include "tests/forward_golden.h"
#include "tests/test_util.h"
#include "worker/families/deepseek_forward.h"
#include "worker/families/deepseek_rope.h"
#include "worker/perplexity.h"

namespace gptqd {
namespace {

using test::Golden;
using test::kRelTol;
using test::rel_err;

std::string ds_dir(const std::string& name) {
  return test::source_path("tests/fixtures/deepseek/" + name);
}

// The worst relative error over every block run alone (transformers' input) with `rules`.
double worst_block_error(Backend& be, const Golden& g, const DeepseekRules& rules) {
  double worst = 0;
  BlockWorkspace ws(be, g.dims, g.batch * g.seq);
  for (int64_t b = 0; b < g.dims.n_layer; ++b) {
    const std::vector<float> in =
        g.tensor(b == 0 ? "embeddings" : "block." + std::to_string(b - 1));
    Buffer h(be, in);
    const BlockWeights w = load_block_weights(be, g.model, g.dims, b);
    deepseek_block(be, g.dims, w, g.batch, g.seq, h.data(), ws, {}, -1, rules);
    worst = std::max(worst, rel_err(h.to_host(), g.tensor("block." + std::to_string(b))));
  }
  return worst;
}

class DeepseekForwardGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(DeepseekForwardGolden, EveryBlockAndTheLogitsMatchTransformers) {
  const Golden g(ds_dir(GetParam()));
  auto be = make_cpu_backend(1);
  const test::Trace tr = test::run_forward(*be, g);
  const std::string report = test::expect_trace_matches(g, tr, GetParam());
  const double alone = worst_block_error(*be, g, DeepseekRules{});
  EXPECT_LE(alone, kRelTol) << "a block run alone on transformers' input";
  std::printf("[ relerr   ] %s; worst block alone %.2e\n", report.c_str(), alone);
}

TEST_P(DeepseekForwardGolden, PerplexityMatchesTransformers) {
  const std::string dir = ds_dir(GetParam());
  test::expect_perplexity_matches_transformers(dir, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Deepseek, DeepseekForwardGolden,
                         ::testing::Values("lora_yarn", "plain_q", "groups"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(DeepseekForwardFixtures, CoverWhatTheyClaim) {
  const ModelSpec a = HfModel::open(ds_dir("lora_yarn")).spec();
  const ModelSpec p = HfModel::open(ds_dir("plain_q")).spec();
  const ModelSpec g = HfModel::open(ds_dir("groups")).spec();
  EXPECT_EQ(a.config.mla.q_lora_rank, 24);
  EXPECT_EQ(p.config.mla.q_lora_rank, 0) << "q_lora_rank null: q_proj";
  EXPECT_TRUE(a.config.mla.yarn.on);
  EXPECT_TRUE(g.config.mla.yarn.on);
  EXPECT_FALSE(g.config.mla.yarn.truncate);
  EXPECT_FALSE(p.config.mla.yarn.on);
  EXPECT_NE(mla_attention_factor(a.config), 1.0) << "YaRN's cos/sin factor is exercised";
  EXPECT_NE(mla_softmax_scale(a.config),
            1 / std::sqrt(static_cast<double>(a.config.mla.qk_head_dim())))
      << "YaRN's softmax mscale is exercised";
  EXPECT_LT(a.config.mla.v_head_dim, a.config.mla.qk_head_dim());
  EXPECT_GT(p.config.mla.v_head_dim, p.config.mla.qk_head_dim());
  EXPECT_TRUE(a.config.mla.rope_interleave);
  EXPECT_FALSE(p.config.mla.rope_interleave);
  EXPECT_EQ(a.config.n_experts, 9);
  EXPECT_EQ(a.config.experts_per_tok, 3);
  EXPECT_EQ(a.config.mla.n_group, 3);
  EXPECT_EQ(a.config.mla.topk_group, 2);
  EXPECT_EQ(p.config.n_experts, 5);
  EXPECT_EQ(p.config.experts_per_tok, 1);
  EXPECT_FALSE(p.config.norm_topk_prob);
  EXPECT_EQ(p.config.shared_ffn, 2 * p.config.moe_ffn) << "2 shared experts";
  EXPECT_TRUE(p.config.mla.attention_bias);
  EXPECT_TRUE(p.config.tie_word_embeddings);
  EXPECT_EQ(g.config.mla.n_group, 4);
  EXPECT_EQ(g.config.mla.topk_group, 2);
  // Groups [q_a, kv_a] [q_b, kv_b] [o] [every gate+up, shared gate+up] [every down, shared
  // down]; q_a and kv_a share a Hessian, q_b and kv_b have one each, one per expert after.
  EXPECT_EQ(a.n_groups, 5);
  EXPECT_EQ(a.linears[0].module, "self_attn.q_a_proj");
  EXPECT_EQ(a.linears[1].module, "self_attn.kv_a_proj_with_mqa");
  EXPECT_EQ(a.linears[0].input, a.linears[1].input);
  EXPECT_EQ(a.linears[2].module, "self_attn.q_b_proj");
  EXPECT_EQ(a.linears[3].module, "self_attn.kv_b_proj");
  EXPECT_NE(a.linears[2].input, a.linears[3].input);
  EXPECT_EQ(a.linears[2].group, a.linears[3].group);
  EXPECT_EQ(a.linears[4].module, "self_attn.o_proj");
  EXPECT_EQ(a.linears[5].module, "mlp.experts.0.gate_proj");
  EXPECT_EQ(a.linears[5].input, a.linears[6].input);
  EXPECT_EQ(a.linears[5 + 2 * 9].module, "mlp.shared_experts.gate_proj");
  EXPECT_EQ(a.linears.back().module, "mlp.shared_experts.down_proj");
  EXPECT_EQ(a.n_inputs, 4 + 2 * (9 + 1));
  EXPECT_EQ(p.linears[0].module, "self_attn.q_proj");
  EXPECT_EQ(p.linears[2].module, "self_attn.kv_b_proj");
  EXPECT_TRUE(p.linears[1].bias) << "kv_a with attention_bias";
  EXPECT_FALSE(p.linears[0].bias) << "q_proj never has a bias";
  // The router and its correction bias are tensors of the block, not linears.
  for (const LinearSpec& l : a.linears) EXPECT_EQ(l.module.find("mlp.gate"), std::string::npos);
}

// ---- mutation controls ---------------------------------------------------------------------

double mutant(Backend& be, const char* name, const DeepseekRules& rules,
              void (*edit)(ModelConfig&) = nullptr) {
  Golden g(ds_dir(name));
  if (edit) edit(g.dims.config);
  return worst_block_error(be, g, rules);
}

TEST(DeepseekForwardMutants, UnmutatedPasses) {
  auto be = make_cpu_backend(1);
  for (const char* name : {"lora_yarn", "plain_q", "groups"})
    EXPECT_LE(mutant(*be, name, DeepseekRules{}), kRelTol) << name;
}

TEST(DeepseekForwardMutants, MissingCorrectionBiasFails) {
  auto be = make_cpu_backend(1);
  DeepseekRules r;
  r.use_correction_bias = false;
  for (const char* name : {"lora_yarn", "plain_q", "groups"}) {
    const double e = mutant(*be, name, r);
    EXPECT_GT(e, 100 * kRelTol) << name << ": the correction bias is not tested";
    std::printf("[ mutant   ] %s without e_score_correction_bias: %.2e\n", name, e);
  }
}

TEST(DeepseekForwardMutants, RopeOnTheWrongDimsOrLayoutFails) {
  auto be = make_cpu_backend(1);
  for (const auto mode : {DeepseekRules::Rope::kOnNopePart, DeepseekRules::Rope::kFlippedLayout}) {
    DeepseekRules r;
    r.rope = mode;
    for (const char* name : {"lora_yarn", "plain_q", "groups"}) {
      const double e = mutant(*be, name, r);
      const char* what =
          mode == DeepseekRules::Rope::kOnNopePart ? "on the nope dims" : "in the other layout";
      EXPECT_GT(e, 100 * kRelTol) << name << ": RoPE " << what << " is not noticed";
      std::printf("[ mutant   ] %s with the RoPE %s: %.2e\n", name, what, e);
    }
  }
}

TEST(DeepseekForwardMutants, WrongRoutedScalingFactorFails) {
  auto be = make_cpu_backend(1);
  for (const char* name : {"lora_yarn", "plain_q", "groups"}) {
    const double e = mutant(*be, name, DeepseekRules{},
                            [](ModelConfig& c) { c.mla.routed_scaling_factor = 1.0; });
    EXPECT_GT(e, 100 * kRelTol) << name << ": routed_scaling_factor is not tested";
    std::printf("[ mutant   ] %s with routed_scaling_factor 1: %.2e\n", name, e);
  }
}

TEST(DeepseekForwardMutants, GroupSelectionOffFails) {
  auto be = make_cpu_backend(1);
  DeepseekRules r;
  r.group_limited = false;
  for (const char* name : {"lora_yarn", "groups"}) {
    const double e = mutant(*be, name, r);
    EXPECT_GT(e, 100 * kRelTol) << name << ": the group-limited selection is not tested";
    std::printf("[ mutant   ] %s without the group limit: %.2e\n", name, e);
  }
}

TEST(DeepseekForwardMutants, YarnOffFails) {
  auto be = make_cpu_backend(1);
  for (const char* name : {"lora_yarn", "groups"}) {
    const double e =
        mutant(*be, name, DeepseekRules{}, [](ModelConfig& c) { c.mla.yarn = YarnRope{}; });
    EXPECT_GT(e, 100 * kRelTol) << name << ": YaRN is not tested";
    std::printf("[ mutant   ] %s without YaRN: %.2e\n", name, e);
  }
}

}  // namespace
}  // namespace gptqd
