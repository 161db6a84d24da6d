// One block through quantize_block and the checkpoint: the weights dequantized from
// the file are bit for bit the weights the quantized forward used, and GPTQ beats
// round-to-nearest on every layer.
#include <gtest/gtest.h>

#include <cstring>

#include "io/checkpoint/checkpoint.h"
#include "tests/model_fixture.h"
#include "tests/test_util.h"
#include "worker/block_quantizer.h"

namespace gptqd {
namespace {

CkptLayout layout_for(const ModelSpec& d, const QuantConfig& q) {
  CkptLayout l;
  l.n_blocks = d.n_layer;
  for (const LinearSpec& ls : d.linears) l.layers.push_back({ls.module, ls.out, ls.in, ls.group});
  CkptRunSpec r;
  r.name = q.name;
  r.bits = q.bits;
  r.group_size = q.group_size;
  r.act_order = q.act_order;
  l.runs.push_back(r);
  l.model_config_json = "{}";
  l.job_config_yaml = "test: true";
  l.fingerprint = "test";
  return l;
}

class BlockQuantizerTest : public ::testing::TestWithParam<std::tuple<int, int64_t, bool>> {};

TEST_P(BlockQuantizerTest, CheckpointDequantIsForwardWeightsAndBeatsRtn) {
  const auto [bits, group, act_order] = GetParam();
  const auto dir = test::scratch_dir("blockq");
  test::make_random_bloom(dir.string(), {});
  const HfModel model = HfModel::open(dir.string());
  const ModelSpec d = model.spec();
  auto be = make_cpu_backend(1);

  QuantConfig q;
  q.bits = bits;
  q.group_size = group;
  q.act_order = act_order;
  q.name = "t";
  BlockWeights w = load_block_weights(*be, model, d, 0);
  Activations act;
  act.nseq = 6;
  act.seq = 24;
  act.h = Buffer(*be, test::random_vector(act.nseq * act.seq * d.hidden, 3));
  act.scratch = Buffer(*be, act.nseq * act.seq * d.hidden);
  BlockWorkspace ws(*be, d, 2 * act.seq);
  const BlockResult res = quantize_block(*be, d, w, act, 2, ws, q, 0);

  const std::string path = (dir / "ckpt.h5").string();
  {
    Checkpoint ck = Checkpoint::create(path, layout_for(d, q), MPI_COMM_WORLD);
    for (size_t i = 0; i < d.linears.size(); ++i) {
      LayerData ld;
      ld.codes = res[i].q.codes;
      ld.scales = res[i].q.scales;
      ld.zeros = res[i].q.zeros;
      ld.g_idx = res[i].q.g_idx;
      ld.perm = res[i].q.perm;
      ld.bias = w.linears[i].host_b;
      ld.stats = res[i].stats;
      ck.write_layer("t", 0, d.linears[i].module, 0, w.linears[i].out, ld);
    }
    ck.mark_complete("t", 0);
    ck.close();
  }
  const Checkpoint rd = Checkpoint::open_read(path);
  EXPECT_EQ(rd.completion("t"), (std::vector<uint8_t>{1, 0}));
  for (size_t i = 0; i < d.linears.size(); ++i) {
    const std::vector<float> from_file = rd.dequantize("t", 0, d.linears[i].module);
    const std::vector<float> used = w.linears[i].w.to_host();
    ASSERT_EQ(from_file.size(), used.size());
    EXPECT_EQ(0, std::memcmp(from_file.data(), used.data(), used.size() * sizeof(float)))
        << d.linears[i].module << ": file dequantization differs from the forward's weights";
    EXPECT_LT(res[i].stats.gptq_err, res[i].stats.rtn_err) << d.linears[i].module;
    EXPECT_GT(res[i].stats.gptq_err, 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Settings, BlockQuantizerTest,
                         ::testing::Values(std::make_tuple(4, int64_t{32}, false),
                                           std::make_tuple(3, int64_t{-1}, false),
                                           std::make_tuple(2, int64_t{16}, true)));

// Activations in host memory (parallel.activations: host) go through the device one micro-batch
// at a time; the block's codes, stats and output must be the device placement's, bit for bit.
TEST(BlockQuantizerPlacement, HostActivationsGiveTheDeviceResultsExactly) {
  const auto dir = test::scratch_dir("placement");
  test::make_random_bloom(dir.string(), {});
  const HfModel model = HfModel::open(dir.string());
  const ModelSpec d = model.spec();
  const int64_t nseq = 5, seq = 16, micro = 2;
  const auto x = test::random_vector(nseq * seq * d.hidden, 9);
  QuantConfig q;
  q.name = "t";
  q.group_size = 32;
  struct Out {
    BlockResult res;
    std::vector<float> y;
  };
  auto run = [&](bool on_host) {
    auto be = make_cpu_backend(1);
    BlockWeights w = load_block_weights(*be, model, d, 0);
    Activations act = make_activations(*be, nseq, seq, d.hidden, micro, on_host);
    EXPECT_EQ(act.on_host(), on_host);
    std::copy(x.begin(), x.end(), act.seqs(0, d.hidden));
    BlockWorkspace ws(*be, d, micro * seq);
    Out o;
    o.res = quantize_block(*be, d, w, act, micro, ws, q, 0);
    o.y.assign(act.seqs(0, d.hidden), act.seqs(nseq, d.hidden));
    return o;
  };
  const Out dev = run(false), host = run(true);
  EXPECT_EQ(0, std::memcmp(dev.y.data(), host.y.data(), dev.y.size() * sizeof(float)));
  EXPECT_NE(0, std::memcmp(dev.y.data(), x.data(), x.size() * sizeof(float))) << "no output";
  for (size_t i = 0; i < d.linears.size(); ++i) {
    EXPECT_EQ(dev.res[i].q.codes, host.res[i].q.codes) << i;
    EXPECT_EQ(dev.res[i].q.scales, host.res[i].q.scales) << i;
    EXPECT_EQ(dev.res[i].stats.gptq_err, host.res[i].stats.gptq_err) << i;
  }
}

}  // namespace
}  // namespace gptqd
