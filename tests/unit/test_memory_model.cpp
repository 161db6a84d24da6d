// worker/memory_model.h against what the worker allocates: one block quantized on the CPU
// backend, whose memory_stats count every buffer the CUDA backend would hold on the device
// (alloc, alloc_u8, the factorization's fp64 scratch). The model's peak must be the measured
// one to the byte, over the settings that change the working set. The attention
// score buffer is the one CUDA-only allocation (the CPU attention works row by row), so it
// is left out of the comparison.
#include <gtest/gtest.h>

#include <tuple>

#include "tests/model_fixture.h"
#include "tests/test_util.h"
#include "worker/block_quantizer.h"
#include "worker/memory_model.h"

namespace gptqd {
namespace {

struct Case {
  bool true_sequential;
  bool act_order;
  int64_t group_size;
  int64_t block_size;
  int64_t micro;
  bool on_host;
  bool partial = false;  // true_sequential in partial passes instead of one
};

class MemoryModelTest : public ::testing::TestWithParam<Case> {};

// Quantizes block 0 of the model in `dir` with the settings of `c` and compares the measured
// device peak with the model's.
void expect_peak_to_the_byte(const std::string& dir, const Case& c) {
  const HfModel model = HfModel::open(dir);
  const ModelSpec d = model.spec();
  const int64_t nseq = 5, seq = 32;
  auto be = make_cpu_backend(1);

  QuantConfig q;
  q.name = "t";
  q.bits = 4;
  q.true_sequential = c.true_sequential;
  q.act_order = c.act_order;
  q.group_size = c.group_size;
  q.block_size = c.block_size;
  {
    BlockWeights w = load_block_weights(*be, model, d, 0);
    Activations act = make_activations(*be, nseq, seq, d.hidden, c.micro, c.on_host);
    const auto x = test::random_vector(nseq * seq * d.hidden, 11);
    std::copy(x.begin(), x.end(), act.seqs(0, d.hidden));  // host memory on the CPU backend
    BlockWorkspace ws(*be, d, std::min(c.micro, nseq) * seq);
    BlockOptions opt;
    opt.sequential = c.partial ? SequentialPasses::kPartial : SequentialPasses::kOne;
    quantize_block(*be, d, w, act, c.micro, ws, q, 0, {}, opt);
  }
  const MemoryStats got = be->memory_stats();
  EXPECT_EQ(got.device_in_use, 0) << "everything freed";

  MemoryWorkload mw;
  mw.samples = nseq;
  mw.seqlen = seq;
  mw.micro_batch = c.micro;
  mw.true_sequential = c.true_sequential;
  mw.block_size = c.block_size;
  mw.group_size = c.group_size;
  mw.activations_on_host = c.on_host;
  mw.one_pass = !c.partial;
  DeviceMemory model_bytes = device_memory(d, mw);
  model_bytes.scores = 0;
  const auto predicted = static_cast<int64_t>(model_bytes.peak());
  EXPECT_EQ(predicted, got.device_peak);
  if (c.on_host) {
    EXPECT_EQ(got.host_peak,
              nseq * seq * d.hidden * 4 + static_cast<int64_t>(sequential_state_bytes(d, mw)));
  } else {
    EXPECT_EQ(got.host_peak, 0);
  }
}

TEST_P(MemoryModelTest, IsTheMeasuredDevicePeakToTheByte) {
  const auto dir = test::scratch_dir("memmodel");
  test::make_random_bloom(dir.string(), {1, 96, 4, 64, 7});
  expect_peak_to_the_byte(dir.string(), GetParam());
}

// A mixture of experts (Qwen2-MoE: 3 experts and a shared expert): a group holds one Hessian per
// expert, all alive while the group is captured and quantized.
TEST(MemoryModelMoe, IsTheMeasuredDevicePeakToTheByte) {
  const std::string dir = test::source_path("tests/fixtures/moe/qwen2_moe");
  for (const Case& c :
       {Case{true, false, 16, 128, 1, false}, Case{false, true, -1, 16, 2, false},
        Case{true, false, 16, 128, 5, true}, Case{true, false, 16, 128, 1, false, true}}) {
    SCOPED_TRACE(::testing::Message()
                 << "true_sequential " << c.true_sequential << " micro " << c.micro);
    expect_peak_to_the_byte(dir, c);
  }
}

// Routed experts sharded over 2 replicas (worker/expert_shards.h) on the Qwen2-MoE fixture
// (hidden 32, 3 experts of 16 top-1, a shared expert of 40): the largest group is the experts' and
// the shared expert's gate/up inputs, four 32-wide Hessians of 4 x 32^2 bytes. With partial
// Hessians exchanged (or experts replicated) a replica holds all four; with activations, the
// shared expert's and its own experts' (replica 0 owns experts 0 and 2), and on the host the rows
// it routes: at most its 5 x 32 tokens x top-1 rows of 32 floats.
TEST(MemoryModelMoe, ShardedExpertsHoldTheirOwnHessiansOnly) {
  const ModelSpec d = HfModel::open(test::source_path("tests/fixtures/moe/qwen2_moe")).spec();
  const uint64_t one = 4 * 32 * 32;
  MemoryWorkload w;
  w.samples = 5;
  w.seqlen = 32;
  w.replicas = 2;
  w.moe.experts = "replicated";
  EXPECT_EQ(device_memory(d, w).hessians, 4 * one);
  w.moe.experts = "sharded";
  w.moe.exchange = "hessians";
  EXPECT_EQ(device_memory(d, w).hessians, 4 * one) << "a partial Hessian of every expert";
  const uint64_t host = host_memory(d, w);
  w.moe.exchange = "activations";
  // + the buffer an owner uploads received rows through: one micro-batch (1 x 32 tokens) of 32.
  const uint64_t inbox = 4 * 32 * 32;
  EXPECT_EQ(device_memory(d, w).hessians, 3 * one + inbox) << "the shared expert's and two owned";
  EXPECT_EQ(host_memory(d, w), host - 2 * one + 4 * 5 * 32 * 32)
      << "its host copies of the Hessians, and the routed rows";
  // auto: 10 x 32 tokens over 2 replicas, top-1 of 3 experts: 53 rows per expert and replica,
  // more than the 32-wide input: partial Hessians; 2 x 32 tokens: 11 rows, activations.
  w.moe.exchange = "auto";
  EXPECT_EQ(device_memory(d, w).hessians, 4 * one);
  w.samples = 1;
  EXPECT_EQ(device_memory(d, w).hessians, 3 * one + inbox);
  w.replicas = 1;
  EXPECT_EQ(device_memory(d, w).hessians, 4 * one) << "one replica owns everything";
}

INSTANTIATE_TEST_SUITE_P(
    Settings, MemoryModelTest,
    ::testing::Values(Case{true, false, 32, 128, 1, false}, Case{true, true, -1, 16, 2, false},
                      Case{false, false, 32, 128, 1, false}, Case{false, true, 16, 32, 5, false},
                      Case{true, false, 32, 128, 2, true}, Case{false, false, -1, 128, 1, true},
                      Case{true, false, 32, 128, 2, false, true},
                      Case{true, true, 16, 128, 2, true, true}));

}  // namespace
}  // namespace gptqd

namespace gptqd {
namespace {

// parallel.sequential_passes: auto keeps the one pass exactly while its peak fits the budget
// where the state lives (the device with device activations, the host with host ones); one and
// partial as asked; nothing to keep without true_sequential.
TEST(MemoryModelSequential, AutoKeepsOnePassOnlyWhereItFits) {
  const auto dir = test::scratch_dir("memmodel_seq");
  test::make_random_bloom(dir.string(), {1, 96, 4, 64, 7});
  const ModelSpec d = HfModel::open(dir.string()).spec();
  MemoryWorkload w;
  w.samples = 8;
  w.seqlen = 32;
  MemoryWorkload one = w;
  one.one_pass = true;
  const uint64_t state = sequential_state_bytes(d, one);
  EXPECT_EQ(state, 4u * 8 * 32 * 4 * 96) << "the 4h_to_h input, 4h floats per token";
  EXPECT_EQ(sequential_state_bytes(d, w), 0u) << "not asked for";
  const uint64_t peak = device_memory(d, one).peak();
  EXPECT_EQ(peak, device_memory(d, w).peak() + state);
  EXPECT_TRUE(one_pass_sequential(d, w, "auto", peak, 0));
  EXPECT_FALSE(one_pass_sequential(d, w, "auto", peak - 1, 0));
  EXPECT_TRUE(one_pass_sequential(d, w, "auto", 0, 0)) << "an unknown budget fits";
  EXPECT_TRUE(one_pass_sequential(d, w, "one", 1, 1));
  EXPECT_FALSE(one_pass_sequential(d, w, "partial", 0, 0));
  MemoryWorkload host = w;
  host.activations_on_host = true;
  MemoryWorkload host_one = host;
  host_one.one_pass = true;
  const uint64_t host_peak = host_memory(d, host_one);
  EXPECT_EQ(host_peak, host_memory(d, host) + state) << "kept beside host activations";
  EXPECT_TRUE(one_pass_sequential(d, host, "auto", 1, host_peak));
  EXPECT_FALSE(one_pass_sequential(d, host, "auto", 0, host_peak - 1));
  MemoryWorkload plain = w;
  plain.true_sequential = false;
  EXPECT_FALSE(one_pass_sequential(d, plain, "one", 0, 0));
  // calibration.inputs original keeps the block's input beside the state: + h per token.
  one.original_inputs = true;
  EXPECT_EQ(sequential_state_bytes(d, one), state + 4u * 8 * 32 * 96);
}

}  // namespace
}  // namespace gptqd
