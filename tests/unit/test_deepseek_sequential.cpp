// DeepSeek-V3's resume points (worker/families/deepseek.cpp: after the normed input, after q_b's
// and kv_b's latents, after the heads' output, after the MoE's normed input; not after the down
// projections) proved as tests/unit/test_sequential_pass.cpp proves the other families': true-
// sequential calibration in one pass (kept state, resumed) gives the partial passes' codes,
// scales, statistics, expert token counts and block output bit for bit, on the device and the
// host, with routed and all-experts calibration, q_lora_rank set and null. Controls: the
// comparison sees true-sequential off, and garbage written into every workspace buffer between
// the steps of the pass changes nothing.
#include <gtest/gtest.h>

#include <cstring>

#include "tests/test_util.h"
#include "worker/block_quantizer.h"
#include "worker/sequential_pass.h"

namespace gptqd {
namespace {

struct Case {
  std::string name, dir, calibration;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

struct Outcome {
  BlockResult res;
  std::vector<float> y;
};

Outcome quantize(const HfModel& model, const Case& c, SequentialPasses passes, bool on_host,
                 bool true_sequential) {
  const ModelSpec d = model.spec();
  const int64_t nseq = 5, seq = 12, micro = 2;
  auto be = make_cpu_backend(1);
  BlockWeights w = load_block_weights(*be, model, d, 0);
  Activations act = make_activations(*be, nseq, seq, d.hidden, micro, on_host);
  const auto x = test::random_vector(static_cast<size_t>(nseq * seq * d.hidden), 5);
  std::copy(x.begin(), x.end(), act.seqs(0, d.hidden));
  BlockWorkspace ws(*be, d, micro * seq);
  QuantConfig q;
  q.name = "t";
  q.bits = 3;
  q.group_size = 8;
  q.act_order = true;
  q.true_sequential = true_sequential;
  BlockOptions opt;
  opt.moe.calibration = c.calibration;
  opt.moe.min_tokens = 1;
  opt.sequential = passes;
  Outcome o;
  o.res = quantize_block(*be, d, w, act, micro, ws, q, 0, {}, opt);
  o.y.assign(act.seqs(0, d.hidden), act.seqs(nseq, d.hidden));
  return o;
}

bool same(const Outcome& a, const Outcome& b, std::string* why) {
  for (size_t i = 0; i < a.res.size(); ++i) {
    const QuantizedLayer &qa = a.res[i].q, &qb = b.res[i].q;
    if (qa.codes != qb.codes || qa.scales != qb.scales || qa.zeros != qb.zeros ||
        a.res[i].stats.gptq_err != b.res[i].stats.gptq_err || a.res[i].tokens != b.res[i].tokens) {
      *why = "layer " + std::to_string(i);
      return false;
    }
  }
  if (a.y.size() != b.y.size() ||
      std::memcmp(a.y.data(), b.y.data(), a.y.size() * sizeof(float)) != 0) {
    *why = "the block's output";
    return false;
  }
  return true;
}

class DeepseekSequential : public ::testing::TestWithParam<Case> {};

TEST_P(DeepseekSequential, OnePassGivesThePartialPassesCodesAndOutput) {
  const Case& c = GetParam();
  const HfModel model = HfModel::open(test::source_path(c.dir));
  for (const bool on_host : {false, true}) {
    const Outcome a = quantize(model, c, SequentialPasses::kOne, on_host, true);
    const Outcome b = quantize(model, c, SequentialPasses::kPartial, on_host, true);
    std::string why;
    EXPECT_TRUE(same(a, b, &why)) << c.name << (on_host ? " host" : " device") << ": " << why
                                  << " differs";
  }
  std::string why;
  EXPECT_FALSE(same(quantize(model, c, SequentialPasses::kOne, false, true),
                    quantize(model, c, SequentialPasses::kOne, false, false), &why))
      << c.name << ": true-sequential on and off gave the same codes";
}

INSTANTIATE_TEST_SUITE_P(
    Deepseek, DeepseekSequential,
    ::testing::Values(Case{"lora", "tests/fixtures/deepseek/lora_yarn", "routed"},
                      Case{"lora_all", "tests/fixtures/deepseek/lora_yarn", "all"},
                      Case{"plain_q", "tests/fixtures/deepseek/plain_q", "routed"},
                      // block 0 is first_k_dense_replace's dense MLP: resumable after its down
                      // projection's capture too
                      Case{"dense_first", "tests/fixtures/deepseek/dense_first", "routed"}),
    [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

// The pass step by step with every workspace buffer overwritten between the steps: the block's
// output equals one uninterrupted forward's (the kept state carries the forward, not the
// workspace).
TEST(DeepseekSequentialPass, KeptStateNotTheWorkspaceCarriesTheForward) {
  for (const char* dir : {"tests/fixtures/deepseek/lora_yarn", "tests/fixtures/deepseek/plain_q"}) {
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
