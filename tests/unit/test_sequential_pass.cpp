// True-sequential calibration in one pass (worker/sequential_pass.h) against the partial passes
// it replaces: for every family (BLOOM with and without the post-LN residual, Llama/Qwen3, OPT
// pre- and post-LN, Qwen2-MoE with its shared expert, Mixtral, routed and all-experts
// calibration), activations on the device and on the host, the default calibration inputs, the
// original ones and a block whose output nothing reads: the same codes, scales, statistics and
// block output, bit for bit.
//
// Controls: the comparison sees the difference between true-sequential and not (it can fail),
// and garbage written into every workspace buffer between the pass's steps changes nothing (the
// kept state, not what the workspace happens to hold, carries the forward on).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "tests/model_fixture.h"
#include "tests/test_util.h"
#include "worker/block_quantizer.h"
#include "worker/sequential_pass.h"

namespace gptqd {
namespace {

struct Case {
  std::string name;
  std::string dir;  // a fixture directory; empty: a random BLOOM written by the test
  bool post_ln_residual = false;
  std::string moe_calibration = "routed";
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::string model_dir(const Case& c) {
  if (!c.dir.empty()) return test::source_path(c.dir);
  const auto dir = test::scratch_dir("seqpass_" + c.name);
  test::make_random_bloom(dir.string(), {});
  if (c.post_ln_residual) {
    std::ifstream in(dir / "config.json");
    std::stringstream text;
    text << in.rdbuf();
    std::string json = text.str();
    json.insert(1, "\"apply_residual_connection_post_layernorm\": true, ");
    std::ofstream(dir / "config.json") << json;
  }
  return dir.string();
}

struct Outcome {
  BlockResult res;
  std::vector<float> y;  // act.h after the block
};

struct Settings {
  SequentialPasses passes = SequentialPasses::kOne;
  bool on_host = false, original_inputs = false, forward_output = true, true_sequential = true;
};

Outcome quantize(const HfModel& model, const Case& c, const Settings& s) {
  const ModelSpec d = model.spec();
  const int64_t nseq = 5, seq = 12, micro = 2;
  auto be = make_cpu_backend(1);
  BlockWeights w = load_block_weights(*be, model, d, 0);
  Activations act = make_activations(*be, nseq, seq, d.hidden, micro, s.on_host);
  const auto x = test::random_vector(static_cast<size_t>(nseq * seq * d.hidden), 5);
  std::copy(x.begin(), x.end(), act.seqs(0, d.hidden));
  BlockWorkspace ws(*be, d, micro * seq);
  QuantConfig q;
  q.name = "t";
  q.bits = 3;
  q.group_size = 16;
  q.act_order = true;
  q.true_sequential = s.true_sequential;
  BlockOptions opt;
  opt.moe.calibration = c.moe_calibration;
  opt.moe.min_tokens = 1;
  opt.original_inputs = s.original_inputs;
  opt.forward_output = s.forward_output;
  opt.sequential = s.passes;
  Outcome o;
  o.res = quantize_block(*be, d, w, act, micro, ws, q, 0, {}, opt);
  o.y.assign(act.seqs(0, d.hidden), act.seqs(nseq, d.hidden));
  return o;
}

// Whether two outcomes are the same bit for bit; `why` names the first difference.
bool same(const Outcome& a, const Outcome& b, bool compare_output, std::string* why) {
  for (size_t i = 0; i < a.res.size(); ++i) {
    const QuantizedLayer &qa = a.res[i].q, &qb = b.res[i].q;
    if (qa.codes != qb.codes || qa.scales != qb.scales || qa.zeros != qb.zeros ||
        a.res[i].stats.gptq_err != b.res[i].stats.gptq_err ||
        a.res[i].stats.rtn_err != b.res[i].stats.rtn_err || a.res[i].tokens != b.res[i].tokens) {
      *why = "layer " + std::to_string(i);
      return false;
    }
  }
  if (compare_output && (a.y.size() != b.y.size() ||
                         std::memcmp(a.y.data(), b.y.data(), a.y.size() * sizeof(float)) != 0)) {
    *why = "the block's output";
    return false;
  }
  return true;
}

class SequentialPassFamilies : public ::testing::TestWithParam<Case> {};

TEST_P(SequentialPassFamilies, OnePassGivesThePartialPassesCodesAndOutput) {
  const Case& c = GetParam();
  const HfModel model = HfModel::open(model_dir(c));
  for (const bool on_host : {false, true}) {
    for (const bool original : {false, true}) {
      for (const bool output : {true, false}) {
        Settings one;
        one.on_host = on_host;
        one.original_inputs = original;
        one.forward_output = output;
        Settings partial = one;
        partial.passes = SequentialPasses::kPartial;
        const Outcome a = quantize(model, c, one), b = quantize(model, c, partial);
        std::string why;
        // Without an output pass the one pass leaves the activations part-way: only the codes
        // are compared then.
        EXPECT_TRUE(same(a, b, output, &why))
            << c.name << (on_host ? " host" : " device") << (original ? " original" : "")
            << (output ? "" : " no output") << ": " << why << " differs";
      }
    }
  }
}

TEST_P(SequentialPassFamilies, ControlTheComparisonSeesTrueSequentialOff) {
  const Case& c = GetParam();
  const HfModel model = HfModel::open(model_dir(c));
  Settings off;
  off.true_sequential = false;
  std::string why;
  EXPECT_FALSE(same(quantize(model, c, Settings{}), quantize(model, c, off), true, &why))
      << c.name << ": true-sequential on and off gave the same codes";
}

INSTANTIATE_TEST_SUITE_P(
    Families, SequentialPassFamilies,
    ::testing::Values(Case{"bloom", "", false}, Case{"bloom_post_ln", "", true},
                      Case{"tiny_bloom", "models/tiny-bloom"},
                      Case{"qwen3", "tests/fixtures/families/qwen3"},
                      Case{"llama_gqa", "tests/fixtures/families/llama_gqa"},
                      Case{"opt_pre", "tests/fixtures/families/opt_pre"},
                      Case{"opt_post", "tests/fixtures/families/opt_post"},
                      Case{"qwen2_moe", "tests/fixtures/moe/qwen2_moe"},
                      Case{"qwen2_moe_all", "tests/fixtures/moe/qwen2_moe", false, "all"},
                      Case{"mixtral", "tests/fixtures/moe/mixtral"}),
    [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

// The pass itself, step by step, with every workspace buffer overwritten between the steps: the
// block's output equals one uninterrupted forward's.
TEST(SequentialPass, KeptStateNotTheWorkspaceCarriesTheForward) {
  for (const char* dir : {"tests/fixtures/families/qwen3", "tests/fixtures/moe/qwen2_moe",
                          "tests/fixtures/families/opt_post"}) {
    const HfModel model = HfModel::open(test::source_path(dir));
    const ModelSpec d = model.spec();
    const int64_t nseq = 3, seq = 10, micro = 2;
    auto be = make_cpu_backend(1);
    const BlockWeights w = load_block_weights(*be, model, d, 0);
    const auto x = test::random_vector(static_cast<size_t>(nseq * seq * d.hidden), 8);
    BlockWorkspace ws(*be, d, micro * seq);
    std::vector<float> want = x;
    block_forward_all(*be, d, w, nseq, seq, micro, want.data(), want.data(), ws);
    Activations act = make_activations(*be, nseq, seq, d.hidden, micro, false);
    std::copy(x.begin(), x.end(), act.seqs(0, d.hidden));
    SequentialPass pass(*be, d, act, micro, false);
    for (int g = 0; g <= d.n_groups; ++g) {
      for (Buffer& b : ws.bufs) be->fill(b.data(), 1e3f, b.size());
      pass.run_to(w, ws, g < d.n_groups ? g : -1, {}, {}, {});
    }
    const std::vector<float> got(act.seqs(0, d.hidden), act.seqs(nseq, d.hidden));
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float))) << dir;
    EXPECT_NE(0, std::memcmp(got.data(), x.data(), x.size() * sizeof(float))) << "no output";
  }
}

}  // namespace
}  // namespace gptqd
