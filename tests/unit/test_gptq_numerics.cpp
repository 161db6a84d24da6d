// What the GPTQ core does with bad numbers and how the job's settings reach it:
// NaN/Inf in weights or calibration inputs is an error naming the run, block
// and layer (through quantize_block, as a real job meets it, and through
// gptq_quantize); every quant key of the YAML reaches GptqOptions; and the two
// ways of measuring the output error agree.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "io/job/job_config.h"
#include "kernels/buffer.h"
#include "base/check.h"
#include "tests/model_fixture.h"
#include "tests/test_util.h"
#include "worker/block_quantizer.h"
#include "worker/gptq.h"
#include "worker/hessian.h"

namespace gptqd {
namespace {

// A random 2-block BLOOM's block 0 weights and calibration activations.
struct BlockSetup {
  std::unique_ptr<Backend> be = make_cpu_backend(1);
  std::filesystem::path dir = test::scratch_dir("gptq-numerics");
  ModelSpec d;
  BlockWeights w;
  Activations act;

  BlockSetup() {
    test::make_random_bloom(dir.string(), {});
    const HfModel model = HfModel::open(dir.string());
    d = model.spec();
    w = load_block_weights(*be, model, d, 0);
    act.nseq = 4;
    act.seq = 16;
    act.h = Buffer(*be, test::random_vector(act.nseq * act.seq * d.hidden, 5));
    act.scratch = Buffer(*be, act.nseq * act.seq * d.hidden);
  }
  ~BlockSetup() { std::filesystem::remove_all(dir); }

  // Runs quantize_block as block 3 of run "w4g128"; returns the error message.
  std::string run_and_catch() {
    QuantConfig q;
    q.name = "w4g128";
    BlockWorkspace ws(*be, d, 2 * act.seq);
    try {
      quantize_block(*be, d, w, act, 2, ws, q, 3);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

TEST(GptqNumerics, NanInCalibrationInputsNamesRunBlockAndLayer) {
  BlockSetup s;
  std::vector<float> h = s.act.h.to_host();
  h[5 * s.d.hidden + 7] = NAN;  // one activation of one token
  s.be->to_device(s.act.h.data(), h.data(), static_cast<int64_t>(h.size()));
  const std::string msg = s.run_and_catch();
  EXPECT_NE(msg.find("run w4g128 block 3 self_attention.query_key_value"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("calibration inputs"), std::string::npos) << msg;
}

TEST(GptqNumerics, InfInWeightNamesRunBlockAndLayer) {
  BlockSetup s;
  s.w.linears[1].host_w[17] = -INFINITY;  // BLOOM linear 1: self_attention.dense
  const std::string msg = s.run_and_catch();
  EXPECT_NE(msg.find("run w4g128 block 3 self_attention.dense"), std::string::npos) << msg;
  EXPECT_NE(msg.find("weight has a non-finite value -inf at [0, 17]"), std::string::npos) << msg;
}

// Inputs accumulated by the HessianAccumulator, as a stage does.
TEST(GptqNumerics, OverflowingInputsNameTheLayer) {
  auto be = make_cpu_backend(1);
  const int64_t rows = 6, cols = 10, tokens = 12;
  std::vector<float> x = test::random_vector(tokens * cols, 7);
  x[4 * cols + 2] = 2e20f;  // finite, but its square is not
  HessianAccumulator acc(*be, cols);
  Buffer xd(*be, x);
  acc.add(xd.data(), tokens, 3);
  const std::vector<float> h = acc.to_host();
  const std::vector<float> w = test::random_vector(rows * cols, 8);
  GptqOptions opt;
  opt.group_size = 4;
  opt.label = "run w4g128 block 3 mlp.dense_4h_to_h";
  try {
    gptq_quantize(*be, w.data(), rows, cols, h.data(), opt);
    FAIL() << "no throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("run w4g128 block 3 mlp.dense_4h_to_h: Hessian has a non-finite value"),
              std::string::npos)
        << msg;
  }
}

// Every quant key of a job file reaches the GPTQ options (true_sequential is
// the block driver's, not GPTQ's).
TEST(GptqNumerics, EveryQuantKeyReachesGptqOptions) {
  const JobConfig job = parse_job_config(
      "model:\n  path: /m\ncalibration:\n  text: /t.txt\n"
      "quant:\n  bits: 3\n  group_size: 64\n  sym: true\n  act_order: true\n"
      "  static_groups: true\n  true_sequential: false\n  damp_percent: 0.05\n"
      "  block_size: 32\n  mse_clip: true\n"
      "output:\n  checkpoint: /o.h5\n",
      "t.yaml");
  ASSERT_EQ(job.runs.size(), 1u);
  const GptqOptions o = gptq_options(job.runs[0], "run x block 0 mlp.dense_h_to_4h");
  EXPECT_EQ(o.bits, 3);
  EXPECT_EQ(o.group_size, 64);
  EXPECT_TRUE(o.sym);
  EXPECT_TRUE(o.act_order);
  EXPECT_TRUE(o.static_groups);
  EXPECT_DOUBLE_EQ(o.damp_percent, 0.05);
  EXPECT_EQ(o.block_size, 32);
  EXPECT_TRUE(o.mse_clip);
  EXPECT_EQ(o.label, "run x block 0 mlp.dense_h_to_4h");
  // The defaults are the reference's.
  const GptqOptions d = gptq_options(QuantConfig(), "l");
  const GptqOptions want;
  EXPECT_EQ(d.bits, want.bits);
  EXPECT_EQ(d.group_size, want.group_size);
  EXPECT_EQ(d.sym, want.sym);
  EXPECT_EQ(d.act_order, want.act_order);
  EXPECT_EQ(d.static_groups, want.static_groups);
  EXPECT_DOUBLE_EQ(d.damp_percent, want.damp_percent);
  EXPECT_EQ(d.block_size, want.block_size);
  EXPECT_EQ(d.mse_clip, want.mse_clip);
}

// trace((W - Q) H (W - Q)^T) from H and from the inputs are the same number.
TEST(GptqNumerics, OutputErrorFromInputsEqualsFromHessian) {
  auto be = make_cpu_backend(2);
  const int64_t rows = 9, cols = 30, tokens = 20, samples = 5;
  const std::vector<float> x = test::random_vector(tokens * cols, 11);
  const std::vector<float> w = test::random_vector(rows * cols, 12);
  const std::vector<float> q = test::random_vector(rows * cols, 13);
  HessianAccumulator acc(*be, cols);
  Buffer xd(*be, x);
  acc.add(xd.data(), tokens, samples);
  const std::vector<float> h = acc.to_host();
  const double from_h = output_error(*be, w.data(), q.data(), rows, cols, h.data());
  const double from_x =
      output_error_from_inputs(*be, w.data(), q.data(), rows, cols, x.data(), tokens, samples);
  EXPECT_GT(from_h, 0);
  EXPECT_NEAR(from_x, from_h, 1e-5 * from_h);
  EXPECT_EQ(
      output_error_from_inputs(*be, w.data(), w.data(), rows, cols, x.data(), tokens, samples),
      0.0);
}

}  // namespace
}  // namespace gptqd
