// Reads the next transformer block's weights on a background thread while the current
// block computes: the file reading and fp32 conversion (HfModel::read_f32 over the mmapped
// checkpoint, ~5 GB per BLOOM-176B block in bf16) overlaps the block in use; only the
// upload stays on the caller's path, from host staging memory of Backend::alloc_host
// (pinned on CUDA, so it is a full-speed DMA). At most one block is in flight.
//
// Use:  p.prefetch(first);  for b: { BlockWeights w = p.take(b); p.prefetch(next); ... }
// One thread uses a prefetcher (the one that owns the backend): prefetch() and take() are not
// thread-safe against each other; the reading thread is internal.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "io/model/hf_model.h"
#include "io/model/model_spec.h"
#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "worker/model_weights.h"

namespace gptqd {

class BlockPrefetcher {
 public:
  // Called on the reading thread just before it reads tensor `tensor` (an index into
  // block_tensor_specs()) of `block`; `cancel` turns true once that read is being abandoned
  // (by prefetch/take of another block or by the destructor). For tests, to observe the
  // background read or hold it in flight; must not call the prefetcher.
  using ReadHook = std::function<void(int64_t block, int tensor, const std::atomic<bool>& cancel)>;

  // `be` and `model` must outlive the prefetcher. Starts the (idle) reading thread; the
  // staging memory (one block in fp32) is allocated by the first prefetch().
  BlockPrefetcher(Backend& be, const HfModel& model, const ModelSpec& dims, ReadHook hook = {});
  // Abandons a read in flight at its next tensor boundary, joins the thread and releases the
  // staging memory. Never throws, never blocks longer than one tensor's read.
  ~BlockPrefetcher();
  BlockPrefetcher(const BlockPrefetcher&) = delete;
  BlockPrefetcher& operator=(const BlockPrefetcher&) = delete;

  // Starts reading block `block` (0 <= block < n_layer) into the staging memory on the
  // background thread and returns without waiting for it. Already the block in flight or
  // read: nothing to do. Another block in flight: it is abandoned first (waits for at most
  // its current tensor; its result and any error are dropped). A read error is not thrown
  // here but kept for take(block). Allocates the staging memory with Backend::alloc_host on
  // the first call (calling thread); the backend is never called from the reading thread.
  void prefetch(int64_t block);

  // Block `block`'s weights, equal value for value to load_block_weights(be, model, dims,
  // block) (same Buffers, same host_w / host_b, same digest: hashed on the reading thread). If
  // `block` was prefetched: waits for its read and rethrows on this thread the exception the read
  // raised (the one load_block_weights throws for the same file, e.g. the InputError of a
  // mis-shaped tensor), else uploads from the staging memory. Otherwise (nothing prefetched, or
  // another block: abandoned as in prefetch()) reads synchronously on this thread, as
  // load_block_weights does. Either way the backend is called from this thread only, the
  // staging memory is free again when take() returns, and a debug line gives the wait.
  BlockWeights take(int64_t block);

 private:
  enum class State { kIdle, kQueued, kReading, kReady };

  void reader_loop();
  // Reads block_ into host_ and staging at `staging`, and its digest; stops early when cancel_
  // is set.
  void read_block(int64_t block, float* staging, BlockHostTensors& host, uint64_t& digest);
  // Abandons the read in flight, if any, and returns to kIdle. Never throws.
  void abandon();

  Backend& be_;
  const HfModel& model_;
  ModelSpec dims_;
  ReadHook hook_;
  // Per block kind (ModelSpec::kind), the offset of each tensor in the staging memory.
  std::vector<std::vector<int64_t>> offsets_;
  int64_t block_floats_ = 0;
  HostBuffer staging_;  // written by the reader only while kQueued / kReading

  std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::kIdle;
  bool stop_ = false;
  std::atomic<bool> cancel_{false};
  int64_t block_ = -1;        // the block queued, being read or read
  BlockHostTensors host_;     // kReady: the tensors read
  uint64_t digest_ = 0;       // kReady: their digest
  std::exception_ptr error_;  // kReady: what the read threw
  double read_seconds_ = 0;   // kReady: how long the read took on the reading thread
  std::thread reader_;        // last member: starts after everything it uses
};

}  // namespace gptqd
