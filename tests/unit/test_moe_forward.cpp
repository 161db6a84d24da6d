// The mixture-of-experts forward (Mixtral, Qwen2-MoE, Qwen3-MoE) against transformers 5.25.0 on
// the golden fixtures of scripts/make_moe_fixtures.py (its docstring lists the cases: 5, 3 and 7
// experts, top-2, top-1 and top-3, renormalised top-k or not, a shared expert with its sigmoid
// gate, per-head q/k RMSNorm). Each block's output and the logits within 1e-4 relative
// (tests/forward_golden.h), perplexity within 1e-5.
//
// Mutation controls: the same production code with one rule broken (the top-k weights
// renormalised where transformers does not, or not where it does; the shared expert's gate
// dropped) must miss the tolerance by far.
#include <gtest/gtest.h>

#include <map>

#include "io/job/calibration.h"
#include "tests/forward_golden.h"
#include "tests/test_util.h"
#include "worker/families/moe_forward.h"
#include "worker/perplexity.h"

namespace gptqd {
namespace {

using test::Golden;
using test::kRelTol;
using test::rel_err;

std::string moe_dir(const std::string& name) {
  return test::source_path("tests/fixtures/moe/" + name);
}

// The worst relative error over every block run alone (transformers' input) with `rules`.
double worst_block_error(Backend& be, const Golden& g, const MoeRules& rules) {
  double worst = 0;
  BlockWorkspace ws(be, g.dims, g.batch * g.seq);
  for (int64_t b = 0; b < g.dims.n_layer; ++b) {
    const std::vector<float> in =
        g.tensor(b == 0 ? "embeddings" : "block." + std::to_string(b - 1));
    Buffer h(be, in);
    const BlockWeights w = load_block_weights(be, g.model, g.dims, b);
    moe_block(be, g.dims, w, g.batch, g.seq, h.data(), ws, {}, -1, rules);
    worst = std::max(worst, rel_err(h.to_host(), g.tensor("block." + std::to_string(b))));
  }
  return worst;
}

class MoeForwardGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(MoeForwardGolden, EveryBlockAndTheLogitsMatchTransformers) {
  const Golden g(moe_dir(GetParam()));
  auto be = make_cpu_backend(1);
  const test::Trace tr = test::run_forward(*be, g);
  const std::string report = test::expect_trace_matches(g, tr, GetParam());
  const double alone = worst_block_error(*be, g, MoeRules{});
  EXPECT_LE(alone, kRelTol) << "a block run alone on transformers' input";
  std::printf("[ relerr   ] %s; worst block alone %.2e\n", report.c_str(), alone);
}

TEST_P(MoeForwardGolden, PerplexityMatchesTransformers) {
  const std::string dir = moe_dir(GetParam());
  test::expect_perplexity_matches_transformers(dir, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Moe, MoeForwardGolden,
                         ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(MoeForwardFixtures, CoverWhatTheyClaim) {
  const ModelSpec mx = HfModel::open(moe_dir("mixtral")).spec();
  EXPECT_EQ(mx.config.n_experts, 5);
  EXPECT_EQ(mx.config.experts_per_tok, 2);
  EXPECT_TRUE(mx.config.norm_topk_prob);
  EXPECT_EQ(mx.config.shared_ffn, 0);
  const ModelSpec q2 = HfModel::open(moe_dir("qwen2_moe")).spec();
  EXPECT_EQ(q2.config.n_experts, 3);
  EXPECT_EQ(q2.config.experts_per_tok, 1);
  EXPECT_FALSE(q2.config.norm_topk_prob);
  EXPECT_EQ(q2.config.shared_ffn, 40);
  EXPECT_TRUE(q2.config.qkv_bias);
  const ModelSpec q3 = HfModel::open(moe_dir("qwen3_moe")).spec();
  EXPECT_EQ(q3.config.n_experts, 7) << "read from 5.x's num_local_experts";
  EXPECT_EQ(q3.config.experts_per_tok, 3);
  EXPECT_TRUE(q3.config.norm_topk_prob);
  EXPECT_TRUE(q3.config.qk_norm);
  // Groups [q k v] [o] [every expert's gate+up, shared gate+up] [every down, shared down]; one
  // Hessian input per expert in the MLP groups, gate and up of an expert sharing one.
  EXPECT_EQ(q2.n_groups, 4);
  EXPECT_EQ(q2.n_inputs, 2 + 2 * (3 + 1));
  EXPECT_EQ(q2.linears.size(), 4u + 3 * 3 + 3);
  EXPECT_EQ(q2.linears[4].module, "mlp.experts.0.gate_proj");
  EXPECT_EQ(q2.linears[4].input, q2.linears[5].input);
  EXPECT_EQ(mx.linears[4].module, "block_sparse_moe.experts.0.w1");
  EXPECT_EQ(mx.linears[5].module, "block_sparse_moe.experts.0.w3");
  EXPECT_EQ(mx.linears[4 + 2 * 5].module, "block_sparse_moe.experts.0.w2");
}

// ---- calibration capture -------------------------------------------------------------------

// What one capture forward of block 0 gives each Hessian input: its rows and samples.
struct Captured {
  std::map<int, int64_t> tokens, samples;
  std::vector<float> out;  // the block's output
};

Captured capture_block0(Backend& be, const Golden& g, bool all) {
  Captured c;
  BlockWorkspace ws(be, g.dims, g.batch * g.seq);
  ws.capture_all_experts = all;
  Buffer h(be, g.tensor("embeddings"));
  const BlockWeights w = load_block_weights(be, g.model, g.dims, 0);
  const LinearCapture capture = [&](int input, const float*, int64_t tokens, int64_t samples) {
    c.tokens[input] += tokens;
    c.samples[input] += samples;
  };
  moe_block(be, g.dims, w, g.batch, g.seq, h.data(), ws, capture, -1, MoeRules{});
  c.out = h.to_host();
  return c;
}

// routed: each expert's gate/up and down inputs see the tokens routed to it (top-k: they sum to
// k x tokens), counted as samples; all: every expert sees every token. The block output is the
// routed mix either way, bit for bit the forward's without capture.
TEST(MoeCapture, RoutedAndAllCalibration) {
  auto be = make_cpu_backend(1);
  const Golden g(moe_dir("qwen3_moe"));
  const ModelSpec& d = g.dims;
  const int64_t tokens = g.batch * g.seq, experts = d.config.n_experts;
  const Captured none = [&] {
    Captured c;
    BlockWorkspace ws(*be, d, tokens);
    Buffer h(*be, g.tensor("embeddings"));
    const BlockWeights w = load_block_weights(*be, g.model, d, 0);
    moe_block(*be, d, w, g.batch, g.seq, h.data(), ws, {}, -1, MoeRules{});
    c.out = h.to_host();
    return c;
  }();
  const int gate_in = d.linears[4].input;                // expert 0's gate/up
  const int down_in = d.linears[4 + 2 * experts].input;  // expert 0's down
  for (bool all : {false, true}) {
    SCOPED_TRACE(all ? "all" : "routed");
    const Captured c = capture_block0(*be, g, all);
    EXPECT_EQ(c.out, none.out) << "the capture changed the block's output";
    EXPECT_EQ(c.tokens.at(0), tokens) << "attention input";
    int64_t sum = 0;
    for (int64_t e = 0; e < experts; ++e) {
      const int64_t n = c.tokens.count(gate_in + e) ? c.tokens.at(gate_in + e) : 0;
      const int64_t m = c.tokens.count(down_in + e) ? c.tokens.at(down_in + e) : 0;
      EXPECT_EQ(n, m) << "expert " << e << ": gate/up and down saw different tokens";
      if (n > 0) {
        EXPECT_EQ(c.samples.at(gate_in + e), n) << "an expert's samples are its tokens";
      }
      if (all) {
        EXPECT_EQ(n, tokens) << "expert " << e;
      }
      sum += n;
    }
    EXPECT_EQ(sum, (all ? experts : d.config.experts_per_tok) * tokens);
  }
}

// ---- mutation controls ---------------------------------------------------------------------

TEST(MoeForwardMutants, WrongTopKNormalizationFails) {
  auto be = make_cpu_backend(1);
  // qwen2_moe is top-1: renormalising makes every weight 1 (transformers keeps p).
  for (const char* name : {"mixtral", "qwen2_moe", "qwen3_moe"}) {
    Golden g(moe_dir(name));
    EXPECT_LE(worst_block_error(*be, g, MoeRules{}), kRelTol) << name << " unmutated";
    g.dims.config.norm_topk_prob = !g.dims.config.norm_topk_prob;
    const double e = worst_block_error(*be, g, MoeRules{});
    EXPECT_GT(e, 100 * kRelTol) << name << ": the top-k normalization is not tested";
    std::printf("[ mutant   ] %s with norm_topk_prob flipped: %.2e\n", name, e);
  }
}

TEST(MoeForwardMutants, SharedExpertGateDroppedFails) {
  auto be = make_cpu_backend(1);
  const Golden g(moe_dir("qwen2_moe"));
  MoeRules rules;
  rules.shared_expert_gate = false;
  const double e = worst_block_error(*be, g, rules);
  EXPECT_GT(e, 100 * kRelTol) << "the shared expert's gate is not tested";
  std::printf("[ mutant   ] qwen2_moe without the shared expert's gate: %.2e\n", e);
}

// Routing by the k smallest logits' complement: the top-k choice itself must matter.
TEST(MoeForwardMutants, WrongExpertsChosenFails) {
  auto be = make_cpu_backend(1);
  const Golden g(moe_dir("qwen3_moe"));
  MoeRules rules;
  rules.route = [](const std::vector<float>& logits, int64_t tokens, int64_t experts, int64_t k,
                   bool renormalize) {
    std::vector<float> negated(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) negated[i] = -logits[i];
    return route_top_k(negated, tokens, experts, k, renormalize);
  };
  const double e = worst_block_error(*be, g, rules);
  EXPECT_GT(e, 100 * kRelTol) << "the expert choice is not tested";
  std::printf("[ mutant   ] qwen3_moe routed to the bottom-k experts: %.2e\n", e);
}

}  // namespace
}  // namespace gptqd
