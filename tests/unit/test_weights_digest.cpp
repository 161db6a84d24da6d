// The weights digest (worker/model_weights.h, the checkpoint's weights_digest) and the guard a
// resumed stage keeps with it (worker/weights_guard.h): the digest is the documented hash of the
// tensors' bytes as stored, the same on every read and whichever way the file is laid out, and
// one flipped bit changes it for its block only; the guard refuses a block (or the embedding)
// whose weights changed when a complete block of any run depends on it, naming it, and lets
// every other case through.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/check.h"
#include "io/checkpoint/checkpoint.h"
#include "io/checkpoint/checkpoint_checksum.h"
#include "io/checkpoint/checkpoint_inspect.h"
#include "io/model/hf_model.h"
#include "io/model/safetensors.h"
#include "kernels/backend.h"
#include "tests/checkpoint_fixture.h"
#include "tests/model_fixture.h"
#include "tests/test_util.h"
#include "worker/model_weights.h"
#include "worker/weight_prefetch.h"
#include "worker/weights_guard.h"

namespace gptqd {
namespace {

// Rewrites <dir>/model.safetensors, each tensor passed through `edit` (its entry and bytes), in
// the file's order or reversed.
void rewrite_model(const std::string& dir,
                   const std::function<void(TensorOut&, std::vector<uint8_t>&)>& edit,
                   bool reverse = false) {
  const std::string path = dir + "/model.safetensors";
  std::vector<TensorOut> out;
  std::vector<std::vector<uint8_t>> bytes;
  {
    const SafetensorsFile f = SafetensorsFile::open(path);
    for (const TensorInfo& t : f.tensors()) {
      bytes.emplace_back(f.data(t), f.data(t) + t.nbytes());
      out.push_back(TensorOut{t.name, t.dtype, t.shape, nullptr});
      edit(out.back(), bytes.back());
    }
  }
  for (size_t i = 0; i < out.size(); ++i) out[i].data = bytes[i].data();
  if (reverse) std::reverse(out.begin(), out.end());
  write_safetensors(path, out);
}

// Flips bit 0 of byte 5 of the tensor named `name` (a mantissa bit of its second fp32 value).
void flip_bit(const std::string& dir, const std::string& name) {
  rewrite_model(dir, [&](TensorOut& t, std::vector<uint8_t>& b) {
    if (t.name == name) b.at(5) ^= 1;
  });
}

class WeightsDigest : public ::testing::Test {
 protected:
  static constexpr int64_t kLayers = 3;
  void SetUp() override {
    dir_ = test::scratch_dir(std::string("digest-") +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    test::TinyBloomSpec spec;
    spec.layers = kLayers;
    spec.seed = 11;
    test::make_random_bloom(dir_.string(), spec);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Block digests [0, kLayers) and, last, the embedding's, read as the stage reads them.
  std::vector<uint64_t> digests() {
    const HfModel model = HfModel::open(dir_.string());
    const ModelSpec d = model.spec();
    std::vector<uint64_t> out;
    for (int64_t b = 0; b < kLayers; ++b)
      out.push_back(load_block_weights(be_, model, d, b).digest);
    out.push_back(load_embedding_weights(be_, model, d).digest);
    return out;
  }

  std::unique_ptr<Backend> owned_ = make_cpu_backend(1);
  Backend& be_ = *owned_;
  std::filesystem::path dir_;
};

TEST_F(WeightsDigest, IsTheDocumentedHashOfTheBytesAsStored) {
  const HfModel model = HfModel::open(dir_.string());
  const ModelSpec d = model.spec();
  const SafetensorsFile f = SafetensorsFile::open((dir_ / "model.safetensors").string());
  // docs/checkpoint-format.md: per tensor in the family's order, the dtype's name
  // (length-prefixed), the rank and dims (uint64), the bytes.
  ckpt::Hash64 want;
  for (const TensorSpec& t : d.block_tensors(1)) {
    const TensorInfo* info = f.find("transformer." + t.name);
    ASSERT_NE(info, nullptr) << t.name;
    want.str("F32").u64(info->shape.size());
    for (int64_t dim : info->shape) want.u64(static_cast<uint64_t>(dim));
    want.bytes(f.data(*info), info->nbytes());
  }
  EXPECT_EQ(load_block_weights(be_, model, d, 1).digest, want.digest());
}

TEST_F(WeightsDigest, IsStableAcrossReadsAndPathsAndDiffersBetweenBlocks) {
  const std::vector<uint64_t> first = digests();
  EXPECT_EQ(digests(), first);
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_NE(first[i], 0u);
    for (size_t j = 0; j < i; ++j) EXPECT_NE(first[i], first[j]) << i << " " << j;
  }
  // The prefetch thread hashes what it reads to the same digest.
  const HfModel model = HfModel::open(dir_.string());
  BlockPrefetcher p(be_, model, model.spec());
  for (int64_t b = 0; b < kLayers; ++b) {
    p.prefetch(b);
    EXPECT_EQ(p.take(b).digest, first[static_cast<size_t>(b)]) << "block " << b;
  }
  // The same tensors laid out in another order (other offsets, a new file) are no change.
  rewrite_model(
      dir_.string(), [](TensorOut&, std::vector<uint8_t>&) {}, true);
  EXPECT_EQ(digests(), first);
}

TEST_F(WeightsDigest, OneBitChangesItsBlockOnly) {
  const std::vector<uint64_t> before = digests();
  flip_bit(dir_.string(), "transformer.h.1.self_attention.dense.weight");
  std::vector<uint64_t> after = digests();
  EXPECT_NE(after[1], before[1]);
  after[1] = before[1];
  EXPECT_EQ(after, before) << "only block 1 changed";

  flip_bit(dir_.string(), "transformer.h.1.self_attention.dense.weight");  // back
  EXPECT_EQ(digests(), before);
  flip_bit(dir_.string(), "transformer.h.2.post_attention_layernorm.bias");  // a norm counts
  EXPECT_NE(digests()[2], before[2]);
  flip_bit(dir_.string(), "transformer.h.2.post_attention_layernorm.bias");
  flip_bit(dir_.string(), "transformer.word_embeddings_layernorm.weight");
  after = digests();
  EXPECT_NE(after.back(), before.back()) << "the embedding's layer norm is part of it";
  after.back() = before.back();
  EXPECT_EQ(after, before);
}

TEST_F(WeightsDigest, SameValuesInAnotherDtypeAreAChange) {
  const std::vector<uint64_t> before = digests();
  const std::string name = "transformer.h.0.self_attention.dense.bias";
  rewrite_model(dir_.string(), [&](TensorOut& t, std::vector<uint8_t>& b) {
    if (t.name != name) return;
    std::vector<double> wide(b.size() / sizeof(float));
    for (size_t i = 0; i < wide.size(); ++i) {
      float v = 0;
      std::memcpy(&v, b.data() + i * sizeof(float), sizeof v);
      wide[i] = v;
    }
    b.assign(reinterpret_cast<const uint8_t*>(wide.data()),
             reinterpret_cast<const uint8_t*>(wide.data() + wide.size()));
    t.dtype = DType::F64;
  });
  const HfModel model = HfModel::open(dir_.string());
  const BlockWeights w = load_block_weights(be_, model, model.spec(), 0);
  EXPECT_NE(w.digest, before[0]) << "the bytes as stored differ, so does the digest";
}

// The guard over a checkpoint of the small two-run layout (3 blocks), as a stage leader keeps it.
class WeightsGuardTest : public CheckpointFile {
 protected:
  Checkpoint create() { return Checkpoint::create(path_, small_layout(), MPI_COMM_SELF); }
  Checkpoint resume() { return Checkpoint::open_resume(path_, small_layout(), MPI_COMM_SELF); }
};

TEST_F(WeightsGuardTest, RecordsBeforeUseAndRefusesAChangedBlockThatCompleteBlocksDependOn) {
  {
    Checkpoint ck = create();
    ASSERT_TRUE(ck.has_weights_digests());
    EXPECT_EQ(ck.weights_digests(), (std::vector<uint64_t>{0, 0, 0, 0}));
    WeightsGuard g(ck, "/models/m");
    g.admit_embedding(0xe1);
    g.admit_block(0, 0xa0);  // nothing complete yet: recorded (and synced) before use
    EXPECT_EQ(ck.weights_digests(), (std::vector<uint64_t>{0xa0, 0, 0, 0xe1}));
    EXPECT_NE(inspect_checkpoint(path_).find(
                  "\nweights digests: 1 of 3 blocks, embedding 00000000000000e1\n"),
              std::string::npos);
    ck.mark_complete("w4g4", 0);
    EXPECT_NO_THROW(g.admit_block(0, 0xa0));  // the same job, the next run
    EXPECT_NE(input_error_of([&] { g.admit_block(0, 0xa1); }), "no exception")
        << "a change between the runs of one job";
    g.admit_block(1, 0xb0);  // read and recorded, then killed before its mark
  }
  EXPECT_EQ(Checkpoint::open_read(path_).weights_digests(),
            (std::vector<uint64_t>{0xa0, 0xb0, 0, 0xe1}));
  Checkpoint ck = resume();
  WeightsGuard g(ck, "/models/m");
  EXPECT_NO_THROW(g.admit_embedding(0xe1));
  EXPECT_NO_THROW(g.admit_block(0, 0xa0));
  const std::string msg = input_error_of([&] { g.admit_block(0, 0xbad); });
  EXPECT_NE(msg.find("checkpoint " + path_ +
                     " was quantized from other weights than model "
                     "/models/m holds now: block 0's weights differ (weights digest "
                     "0000000000000bad, 00000000000000a0 stored)"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("--restart"), std::string::npos) << msg;
  const std::string emb = input_error_of([&] { g.admit_embedding(0xe2); });
  EXPECT_NE(emb.find("the embedding differs (weights digest 00000000000000e2"), std::string::npos)
      << emb;
  // Nothing complete depends on block 1: its stale digest gives way to the current weights'.
  EXPECT_NO_THROW(g.admit_block(1, 0xb1));
  EXPECT_EQ(ck.weights_digests()[1], 0xb1u);
}

TEST_F(WeightsGuardTest, ABlockThatACompleteBlockOfAnyRunDependsOnIsChecked) {
  {
    Checkpoint ck = create();
    WeightsGuard g(ck, "m");
    g.admit_embedding(0xe1);
    for (int64_t b = 0; b < 3; ++b) g.admit_block(b, 0xb0 + b);
    // Block 2 complete in the second run only, block 1 in none (a kill between a stage's
    // sends and its mark, or a damaged block 1 found on resume): block 2's data came through
    // block 1's weights.
    ck.mark_complete("w3gall", 2);
  }
  Checkpoint ck = resume();
  WeightsGuard g(ck, "m");
  EXPECT_NE(input_error_of([&] { g.admit_block(1, 0xbad); }).find("block 1's weights differ"),
            std::string::npos);
  EXPECT_NE(input_error_of([&] { g.admit_block(2, 0xbad); }).find("block 2's weights differ"),
            std::string::npos);
  EXPECT_NO_THROW(g.admit_block(1, 0xb1));
  EXPECT_NO_THROW(g.admit_block(2, 0xb2));
}

TEST_F(WeightsGuardTest, BlocksMarkedWithoutADigestAreNotChecked) {
  {
    Checkpoint ck = create();
    ck.mark_complete("w4g4", 0);  // as a gptqd before weights_digest marked it
  }
  Checkpoint ck = resume();
  WeightsGuard g(ck, "m");
  EXPECT_NO_THROW(g.admit_block(0, 0x1234));
  EXPECT_NO_THROW(g.admit_embedding(0x5678));
  g.admit_block(1, 0x9abc);  // nothing complete depends on block 1: recorded
  // Never vouches for data it did not see made.
  EXPECT_EQ(ck.weights_digests(), (std::vector<uint64_t>{0, 0x9abc, 0, 0}));
  ck.close();
  const std::string report = inspect_checkpoint(path_);
  EXPECT_NE(report.find("\nweights digests: 1 of 3 blocks, embedding not yet; none for block(s) 0 "
                        "that complete blocks depend on (not checked)\n"),
            std::string::npos)
      << report;
}

}  // namespace
}  // namespace gptqd
