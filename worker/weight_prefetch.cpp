#include "worker/weight_prefetch.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "base/check.h"
#include "base/log.h"
#include "base/timing.h"

namespace gptqd {
BlockPrefetcher::BlockPrefetcher(Backend& be, const HfModel& model, const ModelSpec& dims,
                                 ReadHook hook)
    : be_(be), model_(model), dims_(dims), hook_(std::move(hook)) {
  // Each kind's tensors at their offsets; the staging memory fits the largest kind.
  for (int k = 0; k < dims.n_kinds(); ++k) {
    const std::vector<TensorSpec> specs = dims.kind(k).block_tensors(0);
    std::vector<int64_t>& offsets = offsets_.emplace_back(specs.size());
    int64_t floats = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
      offsets[i] = floats;
      floats += specs[i].numel();
    }
    block_floats_ = std::max(block_floats_, floats);
  }
  reader_ = std::thread([this] { reader_loop(); });
}

BlockPrefetcher::~BlockPrefetcher() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    cancel_ = true;
  }
  cv_.notify_all();
  if (reader_.joinable()) reader_.join();
}

void BlockPrefetcher::reader_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [this] { return stop_ || state_ == State::kQueued; });
    if (stop_) return;
    state_ = State::kReading;
    const int64_t block = block_;
    float* staging = staging_.data();
    lk.unlock();
    BlockHostTensors host;
    uint64_t digest = 0;
    std::exception_ptr error;
    const auto t0 = SteadyClock::now();
    // Everything the read throws (a bad tensor, bad_alloc) goes to take(); nothing may
    // escape a thread's function.
    try {
      read_block(block, staging, host, digest);
    } catch (...) {
      error = std::current_exception();
    }
    const double seconds = seconds_since(t0);
    lk.lock();
    host_ = std::move(host);
    digest_ = digest;
    error_ = error;
    read_seconds_ = seconds;
    state_ = State::kReady;
    cv_.notify_all();
  }
}

void BlockPrefetcher::read_block(int64_t block, float* staging, BlockHostTensors& host,
                                 uint64_t& digest) {
  const std::vector<TensorSpec> specs = dims_.block_tensors(block);
  const std::vector<int64_t>& offsets = offsets_[static_cast<size_t>(dims_.kind_of(block))];
  host.resize(specs.size());
  ckpt::Hash64 hash;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (hook_) hook_(block, static_cast<int>(i), cancel_);
    if (cancel_) return;
    host[i] = read_block_tensor(model_, specs[i], &hash);
    // The vector becomes host_w / host_b (GPTQ reads them); the staging copy is what the
    // upload reads, at DMA speed where alloc_host is pinned.
    std::memcpy(staging + offsets[i], host[i].data(), host[i].size() * sizeof(float));
  }
  digest = hash.digest();
}

void BlockPrefetcher::abandon() {
  std::unique_lock<std::mutex> lk(mu_);
  if (state_ == State::kIdle) return;
  if (state_ != State::kQueued) {
    cancel_ = true;
    cv_.wait(lk, [this] { return state_ == State::kReady; });
  }
  GPTQD_LOG_DEBUG("weights of block {}: prefetch abandoned", block_);
  state_ = State::kIdle;
  block_ = -1;
  host_ = BlockHostTensors{};
  error_ = nullptr;
  cancel_ = false;
}

void BlockPrefetcher::prefetch(int64_t block) {
  GPTQD_CHECK(block >= 0 && block < dims_.n_layer, "prefetch of block {} of a {}-block model",
              block, dims_.n_layer);
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (state_ != State::kIdle && block_ == block) return;
  }
  abandon();
  // On the calling thread: the backend is not to be called from the reader.
  if (staging_.size() == 0 && block_floats_ > 0) staging_ = HostBuffer(be_, block_floats_);
  {
    std::lock_guard<std::mutex> lk(mu_);
    block_ = block;
    state_ = State::kQueued;
  }
  cv_.notify_all();
}

BlockWeights BlockPrefetcher::take(int64_t block) {
  GPTQD_CHECK(block >= 0 && block < dims_.n_layer, "take of block {} of a {}-block model", block,
              dims_.n_layer);
  std::unique_lock<std::mutex> lk(mu_);
  if (state_ == State::kIdle || block_ != block) {
    lk.unlock();
    abandon();
    const auto t0 = SteadyClock::now();
    BlockWeights w = load_block_weights(be_, model_, dims_, block);
    GPTQD_LOG_DEBUG("weights of block {}: not prefetched, read and uploaded in {:.4f} s", block,
                    seconds_since(t0));
    return w;
  }
  const auto t0 = SteadyClock::now();
  cv_.wait(lk, [this] { return state_ == State::kReady; });
  const double waited = seconds_since(t0);
  BlockHostTensors host = std::move(host_);
  const uint64_t digest = digest_;
  const std::exception_ptr error = error_;
  const double read_seconds = read_seconds_;
  state_ = State::kIdle;
  block_ = -1;
  host_ = BlockHostTensors{};
  error_ = nullptr;
  lk.unlock();
  if (error) {
    GPTQD_LOG_DEBUG("weights of block {}: the prefetched read failed", block);
    std::rethrow_exception(error);
  }
  const std::vector<int64_t>& offsets = offsets_[static_cast<size_t>(dims_.kind_of(block))];
  std::vector<const float*> upload(offsets.size());
  for (size_t i = 0; i < offsets.size(); ++i) upload[i] = staging_.data() + offsets[i];
  const auto t1 = SteadyClock::now();
  BlockWeights w = assemble_block_weights(be_, dims_.block(block), std::move(host), upload);
  w.digest = digest;
  GPTQD_LOG_DEBUG(
      "weights of block {}: prefetched (read {:.4f} s on the prefetch thread), take() waited "
      "{:.4f} s, upload {:.4f} s",
      block, read_seconds, waited, seconds_since(t1));
  return w;
}

}  // namespace gptqd
