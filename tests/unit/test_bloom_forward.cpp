// The C++ BLOOM forward (embed_tokens -> block_forward per block -> lm_head) against HF
// transformers 4.36.2 on the golden fixtures of scripts/make_fixtures.py: tiny random
// BloomForCausalLM checkpoints loaded through HfModel, and transformers' hidden state after
// every block and logits on fixed token ids.
//
// Agreement is measured per tensor as the relative error
//   rel(a, ref) = max_i |a_i - ref_i| / max_i |ref_i|
// and must be <= 1e-4 (fp32 throughout on both sides).
//
// The fixtures are shown to detect the bugs they are meant to catch: a backend whose attention
// uses wrong ALiBi slopes or no causal mask (the rest delegated to the CPU backend) runs the same
// production code and must miss the tolerance by far.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/model/hf_model.h"
#include "io/model/safetensors.h"
#include "kernels/alibi.h"
#include "kernels/buffer.h"
#include "base/check.h"
#include "tests/delegating_backend.h"
#include "tests/forward_golden.h"
#include "tests/test_util.h"
#include "worker/block_forward.h"
#include "worker/embedding.h"
#include "worker/model_weights.h"

namespace gptqd {
namespace {

using test::Golden;
using test::kRelTol;
using test::rel_err;
using test::run_block_alone;
using test::run_forward;
using test::Trace;

std::string fixture_dir(const std::string& name) {
  return test::source_path("tests/fixtures/bloom/" + name);
}

class BloomForwardGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(BloomForwardGolden, EveryBlockAndTheLogitsMatchTransformers) {
  const Golden g(fixture_dir(GetParam()));
  auto be = make_cpu_backend(1);
  const Trace tr = run_forward(*be, g);
  const std::string report = test::expect_trace_matches(g, tr, GetParam());
  RecordProperty("relative_errors", report);
  std::printf("[ relerr   ] %s\n", report.c_str());
}

TEST_P(BloomForwardGolden, EachBlockAloneMatchesTransformers) {
  const Golden g(fixture_dir(GetParam()));
  auto be = make_cpu_backend(1);
  for (int64_t b = 0; b < g.dims.n_layer; ++b) {
    EXPECT_LE(rel_err(run_block_alone(*be, g, b), g.tensor("block." + std::to_string(b))), kRelTol)
        << "block " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(Bloom, BloomForwardGolden, ::testing::Values("pow2", "odd6", "postln"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(BloomForwardFixtures, CoverWhatTheyClaim) {
  const Golden pow2(fixture_dir("pow2")), odd6(fixture_dir("odd6")), postln(fixture_dir("postln"));
  EXPECT_EQ(pow2.dims.n_head, 4);
  EXPECT_EQ(odd6.dims.n_head, 6);  // not a power of two: two extra ALiBi slopes
  EXPECT_TRUE(postln.dims.config.apply_residual_connection_post_layernorm);
  EXPECT_FALSE(pow2.dims.config.apply_residual_connection_post_layernorm);
  EXPECT_GE(odd6.seq, 8);
}

TEST(BloomForwardAlibi, SlopesEqualTransformersBuildAlibiTensor) {
  const SafetensorsFile f = SafetensorsFile::open(fixture_dir("alibi_slopes.safetensors"));
  int checked = 0;
  for (const TensorInfo& t : f.tensors()) {
    const int n = std::stoi(t.name.substr(std::string("slopes.").size()));
    const std::vector<float> ref = f.read_f32(t.name);
    ASSERT_EQ(static_cast<int64_t>(ref.size()), n) << t.name;
    for (int h = 0; h < n; ++h) {
      // within one ulp: alibi.h rounds the power once from double, torch computes it in fp32
      EXPECT_NEAR(alibi_slope(h, n), ref[h], std::ldexp(std::fabs(ref[h]), -23))
          << "n_head " << n << " head " << h;
    }
    ++checked;
  }
  EXPECT_GE(checked, 19);
}

TEST(BloomForwardCausal, ALaterTokenNeverChangesEarlierOutputs) {
  const Golden g(fixture_dir("odd6"));
  auto be = make_cpu_backend(1);
  const Trace base = run_forward(*be, g);
  Golden changed(fixture_dir("odd6"));
  const int64_t last = g.seq - 1;
  for (int64_t s = 0; s < g.batch; ++s) {
    int32_t& id = changed.ids[s * g.seq + last];
    id = (id + 1) % static_cast<int32_t>(g.dims.vocab);
  }
  const Trace other = run_forward(*be, changed);
  const int64_t hd = g.dims.hidden;
  bool last_differs = false;
  for (int64_t s = 0; s < g.batch; ++s) {
    for (int64_t t = 0; t < g.seq; ++t) {
      const float* a = base.blocks.back().data() + (s * g.seq + t) * hd;
      const float* b = other.blocks.back().data() + (s * g.seq + t) * hd;
      const bool same = std::equal(a, a + hd, b);
      if (t < last) {
        EXPECT_TRUE(same) << "sequence " << s << " position " << t;
      } else {
        last_differs = last_differs || !same;
      }
    }
  }
  EXPECT_TRUE(last_differs);
}

// ---- the fixtures catch attention bugs ----------------------------------------

// The CPU backend with a replaceable attention: a straightforward loop implementation whose
// slopes, mask and position bias the test chooses.
class AttentionMutant final : public test::DelegatingBackend {
 public:
  struct Spec {
    std::function<float(int head, int n_head)> slope;
    bool causal = true;
    bool relative = false;  // bias slope * (key - query) instead of slope * key
  };
  explicit AttentionMutant(Spec s) : spec_(std::move(s)) {}

  std::string name() const override { return "attention-mutant"; }

  void alibi_attention(int64_t batch, int64_t seq, int64_t n_head, int64_t hd, const float* qkv,
                       float* ctx) override {
    const int64_t ldq = n_head * 3 * hd, ldc = n_head * hd;
    std::vector<double> p(static_cast<size_t>(seq));
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < n_head; ++h) {
        const double slope = spec_.slope(static_cast<int>(h), static_cast<int>(n_head));
        for (int64_t i = 0; i < seq; ++i) {
          const float* q = qkv + (b * seq + i) * ldq + h * 3 * hd;
          const int64_t end = spec_.causal ? i + 1 : seq;
          double mx = -INFINITY;
          for (int64_t j = 0; j < end; ++j) {
            const float* k = qkv + (b * seq + j) * ldq + h * 3 * hd + hd;
            double s = 0;
            for (int64_t c = 0; c < hd; ++c) s += static_cast<double>(q[c]) * k[c];
            p[j] = s / std::sqrt(static_cast<double>(hd)) +
                   slope * static_cast<double>(spec_.relative ? j - i : j);
            mx = std::max(mx, p[j]);
          }
          double sum = 0;
          for (int64_t j = 0; j < end; ++j) sum += (p[j] = std::exp(p[j] - mx));
          float* out = ctx + (b * seq + i) * ldc + h * hd;
          for (int64_t c = 0; c < hd; ++c) {
            double acc = 0;
            for (int64_t j = 0; j < end; ++j)
              acc += p[j] * qkv[(b * seq + j) * ldq + h * 3 * hd + 2 * hd + c];
            out[c] = static_cast<float>(acc / sum);
          }
        }
      }
    }
  }

 private:
  Spec spec_;
};

double worst_block_error(const std::string& fixture, AttentionMutant::Spec spec) {
  const Golden g(fixture_dir(fixture));
  AttentionMutant be(std::move(spec));
  const Trace tr = run_forward(be, g);
  double worst = rel_err(tr.logits, g.tensor("logits"));
  for (int64_t b = 0; b < g.dims.n_layer; ++b) {
    worst = std::max(worst, rel_err(tr.blocks[b], g.tensor("block." + std::to_string(b))));
  }
  return worst;
}

float correct_slope(int h, int n) { return alibi_slope(h, n); }

// The mutant must miss the tolerance by a wide margin on `fixture`.
void expect_caught(const std::string& fixture, AttentionMutant::Spec spec,
                   const std::string& what) {
  const double e = worst_block_error(fixture, std::move(spec));
  std::printf("[ mutant   ] %s on %s: worst relative error %.2e\n", what.c_str(), fixture.c_str(),
              e);
  EXPECT_GT(e, 100 * kRelTol) << what << " on " << fixture;
}

TEST(BloomForwardMutants, TheLoopReferenceWithCorrectAttentionPasses) {
  // Baseline for the mutants below: the same loop attention, correct settings, within tolerance.
  for (const char* f : {"pow2", "odd6", "postln"}) {
    EXPECT_LE(worst_block_error(f, {correct_slope, true, false}), kRelTol) << f;
  }
}

TEST(BloomForwardMutants, WrongExtraSlopesAreCaughtByTheOddHeadModel) {
  // Slopes 2^(-8i/n) for all n heads: right for powers of two, wrong for 6 heads.
  auto naive = [](int h, int n) { return static_cast<float>(std::exp2(-8.0 * (h + 1) / n)); };
  EXPECT_LE(worst_block_error("pow2", {naive, true, false}), kRelTol);  // same slopes for 4 heads
  expect_caught("odd6", {naive, true, false}, "slopes 2^(-8i/n)");
  // The power-of-two series continued past p instead of the odd interleaved ones.
  auto continued = [](int h, int n) {
    int p = 1;
    while (p * 2 <= n) p *= 2;
    return static_cast<float>(std::exp2(-8.0 * (h + 1) / p));
  };
  expect_caught("odd6", {continued, true, false}, "power-of-two series continued");
  // Heads in reverse order.
  auto reversed = [](int h, int n) { return alibi_slope(n - 1 - h, n); };
  expect_caught("pow2", {reversed, true, false}, "slopes in reverse head order");
}

TEST(BloomForwardMutants, AMissingCausalMaskIsCaught) {
  for (const char* f : {"pow2", "odd6", "postln"}) {
    expect_caught(f, {correct_slope, false, false}, "no causal mask");
  }
}

TEST(BloomForwardMutants, AQueryRelativeBiasIsEquivalent) {
  // slope * (j - i) differs from slope * j by a per-query constant: softmax cancels it (why
  // transformers' alibi tensor holds key positions only).
  EXPECT_LE(worst_block_error("odd6", {correct_slope, true, true}), kRelTol);
}

}  // namespace
}  // namespace gptqd
