// Models whose blocks differ (ModelSpec::kinds): the dense-MLP blocks of an MoE family beside its
// MoE blocks. Qwen2-MoE's decoder_sparse_step, Qwen3-MoE's mlp_only_layers and DeepSeek-V3 /
// Kimi-K2's first_k_dense_replace, against transformers 5.25.0 on the fixtures of
// scripts/make_moe_fixtures.py (qwen2_moe_mixed, qwen3_moe_mixed) and
// scripts/make_deepseek_fixtures.py (dense_first): every block (in the chain and alone) and the
// logits within 1e-4 relative, perplexity within 1e-5.
//
// Mutation controls: a dense block computed as if it had no MLP, and the blocks' kinds assigned
// by another rule (first_k_dense_replace 2 instead of 1: block 1's MoE tensors are then not what
// the spec asks for), must fail.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "io/job/calibration.h"
#include "io/model/config_json.h"
#include "tests/forward_golden.h"
#include "tests/test_util.h"
#include "worker/perplexity.h"

namespace gptqd {
namespace {

using test::Golden;
using test::kRelTol;
using test::rel_err;

struct Fixture {
  std::string name, dir;
  std::vector<int> kinds;  // block_kind
  bool kind0_dense;
};
void PrintTo(const Fixture& f, std::ostream* os) { *os << f.name; }

const Fixture kFixtures[] = {
    {"qwen2_moe_mixed", "tests/fixtures/moe/qwen2_moe_mixed", {0, 1, 0}, true},
    {"qwen3_moe_mixed", "tests/fixtures/moe/qwen3_moe_mixed", {0, 1, 0}, false},
    {"deepseek_dense_first", "tests/fixtures/deepseek/dense_first", {0, 1, 1}, true},
};

class MixedBlocks : public ::testing::TestWithParam<Fixture> {};

TEST_P(MixedBlocks, SpecHasTwoKinds) {
  const Fixture& f = GetParam();
  const ModelSpec d = HfModel::open(test::source_path(f.dir)).spec();
  ASSERT_EQ(d.n_kinds(), 2);
  EXPECT_EQ(d.block_kind, f.kinds);
  EXPECT_EQ(d.kind(0).dense_mlp, f.kind0_dense);
  EXPECT_EQ(d.kind(1).dense_mlp, !f.kind0_dense);
  const ModelSpec& dense = f.kind0_dense ? d.kind(0) : d.kind(1);
  const ModelSpec& moe = f.kind0_dense ? d.kind(1) : d.kind(0);
  // The dense kind: the attention's linears, then gate, up, down of width intermediate_size.
  const LinearSpec& down = dense.linears.back();
  EXPECT_EQ(down.module, "mlp.down_proj");
  EXPECT_EQ(down.in, d.config.ffn);
  EXPECT_EQ(dense.n_groups, moe.n_groups);
  bool experts = false;
  for (const LinearSpec& l : moe.linears) experts = experts || l.expert >= 0;
  EXPECT_TRUE(experts);
  for (const LinearSpec& l : dense.linears) EXPECT_LT(l.expert, 0) << l.module;
  // Block tensors follow the kind: a dense block has no router.
  for (int64_t b = 0; b < d.n_layer; ++b) {
    bool router = false;
    for (const TensorSpec& t : d.block_tensors(b))
      router = router || t.name.find("mlp.gate.weight") != std::string::npos;
    EXPECT_EQ(router, !d.block(b).dense_mlp) << "block " << b;
  }
}

TEST_P(MixedBlocks, EveryBlockAndTheLogitsMatchTransformers) {
  const Fixture& f = GetParam();
  const Golden g(test::source_path(f.dir));
  auto be = make_cpu_backend(1);
  const test::Trace tr = test::run_forward(*be, g);
  const std::string report = test::expect_trace_matches(g, tr, f.name);
  double alone = 0;
  for (int64_t b = 0; b < g.dims.n_layer; ++b)
    alone = std::max(
        alone, rel_err(test::run_block_alone(*be, g, b), g.tensor("block." + std::to_string(b))));
  EXPECT_LE(alone, kRelTol) << "a block run alone on transformers' input";
  std::printf("[ relerr   ] %s; worst block alone %.2e\n", report.c_str(), alone);
}

TEST_P(MixedBlocks, PerplexityMatchesTransformers) {
  const Fixture& f = GetParam();
  const std::string dir = test::source_path(f.dir);
  test::expect_perplexity_matches_transformers(dir, f.name);
}

// Mutation control: each dense block run without its MLP (the forward stopped at the down
// projection's capture, in place: h is then the residual stream after the attention).
TEST_P(MixedBlocks, DenseMlpDroppedFails) {
  const Fixture& f = GetParam();
  const Golden g(test::source_path(f.dir));
  auto be = make_cpu_backend(1);
  BlockWorkspace ws(*be, g.dims, g.batch * g.seq);
  double worst = 0;
  for (int64_t b = 0; b < g.dims.n_layer; ++b) {
    const ModelSpec& k = g.dims.block(b);
    if (!k.dense_mlp) continue;
    Buffer h(*be, g.tensor(b == 0 ? "embeddings" : "block." + std::to_string(b - 1)));
    const BlockWeights w = load_block_weights(*be, g.model, g.dims, b);
    block_forward(*be, k, w, g.batch, g.seq, h.data(), ws, {}, k.n_groups - 1);
    worst = std::max(worst, rel_err(h.to_host(), g.tensor("block." + std::to_string(b))));
  }
  EXPECT_GT(worst, 100 * kRelTol) << f.name;
  std::printf("[ mutant   ] %s: dense MLP dropped: %.2e\n", f.name.c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(Mixed, MixedBlocks, ::testing::ValuesIn(kFixtures),
                         [](const ::testing::TestParamInfo<Fixture>& p) { return p.param.name; });

// Mutation control: the kinds assigned by another rule. With first_k_dense_replace 2 block 1 is
// declared dense, but the file holds MoE tensors there: refused on open, naming a tensor.
TEST(MixedBlocksMutants, WrongBlockKindIsRefused) {
  namespace fs = std::filesystem;
  const fs::path src = test::source_path("tests/fixtures/deepseek/dense_first");
  std::ifstream in(src / "config.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string key = "\"first_k_dense_replace\": 1";
  const size_t at = text.find(key);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, key.size(), "\"first_k_dense_replace\": 2");
  const ModelSpec d = ModelSpec::of(parse_model_config(text, "mutant config.json"));
  EXPECT_TRUE(d.block(1).dense_mlp);
  EXPECT_FALSE(d.block(2).dense_mlp);
  const fs::path dir =
      fs::temp_directory_path() / ("gptqd-mixed-mutant-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << text;
  fs::copy_file(src / "model.safetensors", dir / "model.safetensors");
  try {
    HfModel::open(dir.string());
    ADD_FAILURE() << "a model whose block 1 is declared dense but holds experts was opened";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("layers.1.mlp"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// Every block MoE or every block dense: one kind, no block_kind (as before per-block kinds).
TEST(MixedBlocksConfig, UniformModelsHaveOneKind) {
  const ModelSpec q2 = HfModel::open(test::source_path("tests/fixtures/moe/qwen2_moe")).spec();
  EXPECT_EQ(q2.n_kinds(), 1);
  EXPECT_TRUE(q2.block_kind.empty());
  EXPECT_EQ(&q2.block(1), &q2);
}

}  // namespace
}  // namespace gptqd
