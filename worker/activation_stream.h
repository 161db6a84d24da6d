// Calibration activations streamed between neighbouring pipeline stages, micro-batch by
// micro-batch, over a Transport (worker/transport/transport.h). Both ends use the same
// micro-batch boundaries (same samples, same micro-batch size).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>

#include "worker/block_quantizer.h"
#include "worker/transport/transport.h"

namespace gptqd {

// The stage's input from the previous stage, received micro-batch by micro-batch straight into
// the activations while the first block's first pass runs: at most `window` receives are posted
// ahead.
class StreamReceiver {
 public:
  StreamReceiver(Transport& tp, int peer, Activations& act, int64_t hidden, int64_t micro,
                 int window);

  // Waits for sequences [first, first + count), which must be the next micro-batch.
  void before_read(int64_t first, int64_t count);

  // Every sequence must have been consumed by the first pass.
  void finish() const;

  // Seconds spent waiting in before_read.
  double waited() const { return waited_; }

 private:
  struct Slot {
    int64_t count;
    std::unique_ptr<PendingTransfer> transfer;
  };
  void post();
  Transport& tp_;
  int peer_;
  Activations& act_;
  int64_t hidden_, row_, micro_;
  int window_;
  int64_t posted_ = 0, consumed_ = 0;
  double waited_ = 0;
  std::deque<Slot> pending_;
};

// The stage's output to the next stage: each micro-batch of the last block's final pass is sent
// as soon as it is computed, from the activations themselves (no copy); at most `window` sends in
// flight.
class StreamSender {
 public:
  StreamSender(Transport& tp, int peer, Activations& act, int64_t hidden, int window);

  // Sends sequences [first, first + count), just written.
  void after_write(int64_t first, int64_t count);

  // Waits for every send (the activations may be reused after this).
  void finish();

 private:
  Transport& tp_;
  int peer_;
  Activations& act_;
  int64_t hidden_, row_;
  int window_;
  int64_t sent_ = 0;
  std::deque<std::unique_ptr<PendingTransfer>> pending_;
};

}  // namespace gptqd
