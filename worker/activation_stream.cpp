#include "worker/activation_stream.h"

#include <algorithm>

#include "base/check.h"
#include "base/log.h"
#include "base/timing.h"

namespace gptqd {

StreamReceiver::StreamReceiver(Transport& tp, int peer, Activations& act, int64_t hidden,
                               int64_t micro, int window)
    : tp_(tp),
      peer_(peer),
      act_(act),
      hidden_(hidden),
      row_(act.seq * hidden),
      micro_(micro),
      window_(window) {
  post();
}

void StreamReceiver::before_read(int64_t first, int64_t count) {
  GPTQD_CHECK(first == consumed_ && !pending_.empty() && pending_.front().count == count,
              "activation stream from rank {}: micro-batch [{}, +{}) read out of order", peer_,
              first, count);
  const auto t0 = SteadyClock::now();
  pending_.front().transfer->wait();
  pending_.pop_front();
  const double waited = seconds_since(t0);
  waited_ += waited;
  GPTQD_LOG_DEBUG("stream: sequences [{}, {}) of {} from rank {} in, waited {:.4f} s", first,
                  first + count, act_.nseq, peer_, waited);
  consumed_ += count;
  post();
}

void StreamReceiver::finish() const {
  GPTQD_CHECK(consumed_ == act_.nseq && pending_.empty(),
              "activation stream from rank {}: {} of {} sequences consumed", peer_, consumed_,
              act_.nseq);
}

void StreamReceiver::post() {
  while (static_cast<int>(pending_.size()) < window_ && posted_ < act_.nseq) {
    const int64_t b = std::min(micro_, act_.nseq - posted_);
    pending_.push_back(
        Slot{b, tp_.irecv(act_.seqs(posted_, hidden_), b * row_, peer_, Tag::kActivations)});
    posted_ += b;
  }
}

StreamSender::StreamSender(Transport& tp, int peer, Activations& act, int64_t hidden, int window)
    : tp_(tp), peer_(peer), act_(act), hidden_(hidden), row_(act.seq * hidden), window_(window) {}

void StreamSender::after_write(int64_t first, int64_t count) {
  if (static_cast<int>(pending_.size()) == window_) {
    pending_.front()->wait();
    pending_.pop_front();
  }
  pending_.push_back(tp_.isend(act_.seqs(first, hidden_), count * row_, peer_, Tag::kActivations));
  GPTQD_LOG_DEBUG("stream: sequences [{}, {}) of {} to rank {} posted", first, first + count,
                  act_.nseq, peer_);
  sent_ += count;
}

void StreamSender::finish() {
  for (auto& p : pending_) p->wait();
  pending_.clear();
  GPTQD_CHECK(sent_ == act_.nseq, "activation stream to rank {}: {} of {} sequences sent", peer_,
              sent_, act_.nseq);
}

}  // namespace gptqd
