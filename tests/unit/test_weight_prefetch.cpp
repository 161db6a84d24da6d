// BlockPrefetcher (worker/weight_prefetch.h): the weights it hands out are those of
// load_block_weights bit for bit, the read really runs on its thread ahead of take(), errors
// surface from take() unchanged, abandoning or destroying a read in flight is clean, and the
// backend is only ever called from the thread that owns it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/check.h"
#include "io/model/hf_model.h"
#include "io/model/safetensors.h"
#include "kernels/backend.h"
#include "tests/delegating_backend.h"
#include "tests/model_fixture.h"
#include "tests/test_util.h"
#include "worker/model_weights.h"
#include "worker/weight_prefetch.h"

namespace gptqd {
namespace {

// A BLOOM block: 4 layer-norm tensors and 4 linears with biases.
constexpr int kTensorsPerBlock = 12;

// Bounds every wait below so that a broken prefetcher fails the test instead of hanging it;
// no assertion depends on how long anything takes.
constexpr std::chrono::seconds kHangGuard{30};

// The CPU backend, counting calls made from any thread other than the one that created it
// (the CUDA backend's stream must not be used from two threads).
class ThreadCheckedBackend final : public test::DelegatingBackend {
 public:
  ThreadCheckedBackend() : owner_(std::this_thread::get_id()) {}
  int foreign_calls() const { return foreign_calls_; }
  std::string name() const override { return "thread-checked-cpu"; }

 protected:
  void on_call() override {
    if (std::this_thread::get_id() != owner_) ++foreign_calls_;
  }

 private:
  std::thread::id owner_;
  std::atomic<int> foreign_calls_{0};
};

// A one-shot signal between the test and the reading thread.
class Signal {
 public:
  void set() {
    std::lock_guard<std::mutex> lk(mu_);
    set_ = true;
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, kHangGuard, [this] { return set_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

// Polls until the prefetcher abandons the read the hook is in; false if it never does.
bool wait_for_cancel(const std::atomic<bool>& cancel) {
  const auto deadline = std::chrono::steady_clock::now() + kHangGuard;
  while (!cancel) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

void expect_same_buffer(const Buffer& a, const Buffer& b, const std::string& what) {
  const std::vector<float> ha = a.to_host(), hb = b.to_host();
  ASSERT_GT(ha.size(), 0u) << what;
  ASSERT_EQ(ha.size(), hb.size()) << what;
  EXPECT_EQ(std::memcmp(ha.data(), hb.data(), ha.size() * sizeof(float)), 0) << what;
}

void expect_same_vector(const std::vector<float>& a, const std::vector<float>& b,
                        const std::string& what) {
  ASSERT_GT(a.size(), 0u) << what;
  ASSERT_EQ(a.size(), b.size()) << what;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what;
}

void expect_same_weights(const BlockWeights& got, const BlockWeights& want, int64_t block) {
  const std::string at = " of block " + std::to_string(block);
  EXPECT_NE(got.digest, 0u) << "digest" << at;
  EXPECT_EQ(got.digest, want.digest) << "digest" << at;
  ASSERT_EQ(got.norms.size(), want.norms.size());
  ASSERT_EQ(got.norms.size(), 4u) << "BLOOM's two layer norms, weight and bias";
  for (size_t i = 0; i < got.norms.size(); ++i)
    expect_same_buffer(got.norms[i], want.norms[i], "norm " + std::to_string(i) + at);
  ASSERT_EQ(got.linears.size(), want.linears.size());
  for (size_t i = 0; i < got.linears.size(); ++i) {
    const std::string name = "linear " + std::to_string(i) + at;
    const LinearWeights& g = got.linears[i];
    const LinearWeights& w = want.linears[i];
    EXPECT_EQ(g.out, w.out) << name;
    EXPECT_EQ(g.in, w.in) << name;
    expect_same_vector(g.host_w, w.host_w, name + " host_w");
    expect_same_vector(g.host_b, w.host_b, name + " host_b");
    expect_same_buffer(g.w, w.w, name + " w");
    expect_same_buffer(g.b, w.b, name + " b");
  }
}

// Rewrites <dir>/model.safetensors with `tensor` changed by `edit` (its shape, dtype, bytes).
void corrupt_tensor(const std::string& dir, const std::string& tensor,
                    const std::function<void(TensorOut&, std::vector<uint8_t>&)>& edit) {
  const std::string path = dir + "/model.safetensors";
  std::vector<TensorOut> out;
  std::vector<std::vector<uint8_t>> bytes;
  {
    const SafetensorsFile f = SafetensorsFile::open(path);
    for (const TensorInfo& t : f.tensors()) {
      bytes.emplace_back(f.data(t), f.data(t) + t.nbytes());
      out.push_back(TensorOut{t.name, t.dtype, t.shape, nullptr});
      if (t.name == tensor) edit(out.back(), bytes.back());
    }
  }
  for (size_t i = 0; i < out.size(); ++i) out[i].data = bytes[i].data();
  write_safetensors(path, out);
}

class WeightPrefetch : public ::testing::Test {
 protected:
  static constexpr int64_t kLayers = 3;

  void SetUp() override {
    dir_ = test::scratch_dir(std::string("prefetch-") +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    test::TinyBloomSpec spec;
    spec.layers = kLayers;
    spec.seed = 7;
    test::make_random_bloom(dir_.string(), spec);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

TEST_F(WeightPrefetch, TakeAfterPrefetchIsBitIdenticalToLoadForEveryBlock) {
  const HfModel model = HfModel::open(dir_.string());
  const ModelSpec d = model.spec();
  ThreadCheckedBackend be;
  std::mutex mu;
  std::vector<std::pair<int64_t, int>> reads;
  std::vector<std::thread::id> readers;
  {
    BlockPrefetcher p(be, model, d, [&](int64_t block, int tensor, const std::atomic<bool>&) {
      std::lock_guard<std::mutex> lk(mu);
      reads.emplace_back(block, tensor);
      readers.push_back(std::this_thread::get_id());
    });
    // Two passes over the blocks, as a sweep of two runs or a two-pass evaluation does.
    p.prefetch(0);
    for (int pass = 0; pass < 2; ++pass) {
      for (int64_t b = 0; b < kLayers; ++b) {
        const BlockWeights got = p.take(b);
        if (b + 1 < kLayers) {
          p.prefetch(b + 1);
        } else if (pass == 0) {
          p.prefetch(0);
        }
        expect_same_weights(got, load_block_weights(be, model, d, b), b);
      }
    }
  }
  EXPECT_EQ(be.foreign_calls(), 0) << "the backend was called from the reading thread";
  std::lock_guard<std::mutex> lk(mu);
  ASSERT_EQ(reads.size(), static_cast<size_t>(2 * kLayers * kTensorsPerBlock))
      << "every block is read once per pass, all by the prefetch thread";
  for (size_t k = 0; k < reads.size(); ++k) {
    EXPECT_EQ(reads[k].first, static_cast<int64_t>(k / kTensorsPerBlock) % kLayers);
    EXPECT_EQ(reads[k].second, static_cast<int>(k % kTensorsPerBlock));
    EXPECT_NE(readers[k], std::this_thread::get_id());
    EXPECT_EQ(readers[k], readers[0]) << "one reading thread";
  }
}

TEST_F(WeightPrefetch, ReadRunsOnItsOwnThreadBeforeTakeIsCalled) {
  const HfModel model = HfModel::open(dir_.string());
  const ModelSpec d = model.spec();
  ThreadCheckedBackend be;
  Signal started, go;
  std::atomic<bool> go_was_given{false};
  std::thread::id reader;
  std::atomic<int> tensors_read{0};
  BlockPrefetcher p(be, model, d, [&](int64_t block, int tensor, const std::atomic<bool>&) {
    if (block == 1 && tensor == 0) {
      reader = std::this_thread::get_id();
      started.set();
      // Held here until the test has seen prefetch() return: a prefetch() that read on the
      // calling thread would never get past this wait (until the hang guard, then fail).
      go_was_given = go.wait();
    }
    ++tensors_read;
  });
  p.prefetch(1);
  ASSERT_TRUE(started.wait()) << "the read did not start without take()";
  EXPECT_EQ(tensors_read.load(), 0) << "the read is held at its first tensor";
  go.set();
  const BlockWeights got = p.take(1);
  EXPECT_TRUE(go_was_given.load()) << "prefetch() did not return before its read completed";
  EXPECT_NE(reader, std::this_thread::get_id());
  EXPECT_EQ(tensors_read.load(), kTensorsPerBlock);
  expect_same_weights(got, load_block_weights(be, model, d, 1), 1);
  EXPECT_EQ(be.foreign_calls(), 0);
}

// The error a prefetched read raises is the synchronous load's, type and message, and it
// surfaces from take(), not from prefetch(); the prefetcher stays usable after it.
void expect_error_from_take_as_from_load(const std::string& dir, int64_t bad_block) {
  const HfModel model = HfModel::open(dir);
  const ModelSpec d = model.spec();
  ThreadCheckedBackend be;
  std::string sync_message;
  try {
    load_block_weights(be, model, d, bad_block);
    ADD_FAILURE() << "load_block_weights accepted the corrupt block";
  } catch (const InputError& e) {
    sync_message = e.what();
  }
  ASSERT_FALSE(sync_message.empty());
  BlockPrefetcher p(be, model, d);
  p.prefetch(bad_block - 1);
  const BlockWeights before = p.take(bad_block - 1);
  ASSERT_NO_THROW(p.prefetch(bad_block));
  try {
    p.take(bad_block);
    ADD_FAILURE() << "take() accepted the corrupt block";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), sync_message);
  }
  p.prefetch(bad_block - 1);
  expect_same_weights(p.take(bad_block - 1), before, bad_block - 1);
  EXPECT_EQ(be.foreign_calls(), 0);
}

TEST_F(WeightPrefetch, MisShapedTensorFailsInTakeWithTheSynchronousLoadsError) {
  // Transposed: the same bytes, the wrong shape.
  corrupt_tensor(dir_.string(), "transformer.h.2.mlp.dense_4h_to_h.weight",
                 [](TensorOut& t, std::vector<uint8_t>&) { std::swap(t.shape[0], t.shape[1]); });
  expect_error_from_take_as_from_load(dir_.string(), 2);
}

TEST_F(WeightPrefetch, UnconvertibleTensorFailsInTakeWithTheSynchronousLoadsError) {
  corrupt_tensor(dir_.string(), "transformer.h.1.post_attention_layernorm.bias",
                 [](TensorOut& t, std::vector<uint8_t>& bytes) {
                   t.dtype = DType::BOOL;
                   bytes.assign(static_cast<size_t>(t.shape[0]), 1);
                 });
  expect_error_from_take_as_from_load(dir_.string(), 1);
}

TEST_F(WeightPrefetch, DestroyingWithAReadInFlightStopsItAndReleasesEverything) {
  const HfModel model = HfModel::open(dir_.string());
  const ModelSpec d = model.spec();
  ThreadCheckedBackend be;
  const MemoryStats before = be.memory_stats();
  Signal held;
  std::atomic<bool> saw_cancel{false};
  std::atomic<int> tensors_started{0};
  auto p = std::make_unique<BlockPrefetcher>(
      be, model, d, [&](int64_t, int tensor, const std::atomic<bool>& cancel) {
        ++tensors_started;
        if (tensor == 2) {
          held.set();
          saw_cancel = wait_for_cancel(cancel);  // until the destructor asks the read to stop
        }
      });
  p->prefetch(0);
  ASSERT_TRUE(held.wait());
  EXPECT_GT(be.memory_stats().host_in_use, before.host_in_use) << "staging memory is held";
  p.reset();
  EXPECT_TRUE(saw_cancel.load()) << "the destructor did not cancel the read in flight";
  EXPECT_EQ(tensors_started.load(), 3) << "the read went on after being cancelled";
  EXPECT_EQ(be.memory_stats().host_in_use, before.host_in_use);
  EXPECT_EQ(be.memory_stats().device_in_use, before.device_in_use);
  EXPECT_EQ(be.foreign_calls(), 0);
}

TEST_F(WeightPrefetch, AnExceptionOnTheCallingThreadUnwindsThroughAReadInFlight) {
  const HfModel model = HfModel::open(dir_.string());
  const ModelSpec d = model.spec();
  ThreadCheckedBackend be;
  const MemoryStats before = be.memory_stats();
  std::atomic<bool> saw_cancel{false};
  try {
    Signal held;
    BlockPrefetcher p(be, model, d, [&](int64_t block, int tensor, const std::atomic<bool>& c) {
      if (block == 1 && tensor == 0) {
        held.set();
        saw_cancel = wait_for_cancel(c);
      }
    });
    const BlockWeights w0 = p.take(0);
    p.prefetch(1);
    ASSERT_TRUE(held.wait());
    throw std::runtime_error("the block's compute failed");
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "the block's compute failed");
  }
  EXPECT_TRUE(saw_cancel.load());
  EXPECT_EQ(be.memory_stats().host_in_use, before.host_in_use);
  EXPECT_EQ(be.memory_stats().device_in_use, before.device_in_use);
}

// take() of a block that is not the one prefetched reads it synchronously (the documented
// fallback) and abandons the other block's read; prefetching the same block twice reads it once.
TEST_F(WeightPrefetch, TakeOfABlockNotPrefetchedReadsItSynchronously) {
  const HfModel model = HfModel::open(dir_.string());
  const ModelSpec d = model.spec();
  ThreadCheckedBackend be;
  std::atomic<int> reads{0};
  std::atomic<bool> abandoned_read_saw_cancel{false};
  Signal held;
  BlockPrefetcher p(be, model, d, [&](int64_t block, int tensor, const std::atomic<bool>& c) {
    ++reads;
    if (block == 0 && tensor == 0) {
      held.set();
      abandoned_read_saw_cancel = wait_for_cancel(c);
    }
  });

  expect_same_weights(p.take(1), load_block_weights(be, model, d, 1), 1);
  EXPECT_EQ(reads.load(), 0) << "nothing was prefetched: the read ran on the calling thread";

  p.prefetch(0);
  ASSERT_TRUE(held.wait());
  expect_same_weights(p.take(2), load_block_weights(be, model, d, 2), 2);
  EXPECT_TRUE(abandoned_read_saw_cancel.load()) << "block 0's read was not abandoned";
  EXPECT_EQ(reads.load(), 1) << "block 0's read went on after being abandoned";
  expect_same_weights(p.take(0), load_block_weights(be, model, d, 0), 0);
  EXPECT_EQ(reads.load(), 1);

  p.prefetch(2);
  p.prefetch(2);
  expect_same_weights(p.take(2), load_block_weights(be, model, d, 2), 2);
  EXPECT_EQ(reads.load(), 1 + kTensorsPerBlock) << "block 2 read once";
  EXPECT_EQ(be.foreign_calls(), 0);
}

TEST_F(WeightPrefetch, BlocksOutsideTheModelAreErrors) {
  const HfModel model = HfModel::open(dir_.string());
  const ModelSpec d = model.spec();
  ThreadCheckedBackend be;
  BlockPrefetcher p(be, model, d);
  EXPECT_THROW(p.prefetch(kLayers), Error);
  EXPECT_THROW(p.prefetch(-1), Error);
  EXPECT_THROW(p.take(kLayers), Error);
}

// One block's staging memory while prefetching, nothing once the prefetcher and the weights
// it handed out are gone.
TEST_F(WeightPrefetch, HostMemoryReturnsToItsStartingValue) {
  const HfModel model = HfModel::open(dir_.string());
  const ModelSpec d = model.spec();
  ThreadCheckedBackend be;
  const MemoryStats before = be.memory_stats();
  int64_t block_bytes = 0;
  for (const TensorSpec& s : d.block_tensors(0)) block_bytes += 4 * s.numel();
  {
    BlockPrefetcher p(be, model, d);
    EXPECT_EQ(be.memory_stats().host_in_use, before.host_in_use);
    std::vector<BlockWeights> kept;
    p.prefetch(0);
    for (int64_t b = 0; b < kLayers; ++b) {
      kept.push_back(p.take(b));
      if (b + 1 < kLayers) p.prefetch(b + 1);
      EXPECT_EQ(be.memory_stats().host_in_use, before.host_in_use + block_bytes)
          << "one block of staging, reused";
    }
  }
  EXPECT_EQ(be.memory_stats().host_in_use, before.host_in_use);
  EXPECT_EQ(be.memory_stats().device_in_use, before.device_in_use);
  EXPECT_EQ(be.foreign_calls(), 0);
}

}  // namespace
}  // namespace gptqd
