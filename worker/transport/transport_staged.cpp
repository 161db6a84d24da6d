// The MPI transport for device buffers (worker/transport/transport.h, make_staged_transport).
#include <memory>
#include <utility>
#include <vector>

#include "kernels/backend.h"
#include "base/check.h"
#include "worker/transport/transport.h"

namespace gptqd {
namespace {

// A send: the host copy lives until the transfer is done.
class StagedSend final : public PendingTransfer {
 public:
  StagedSend(std::vector<float> host, std::unique_ptr<PendingTransfer> inner)
      : host_(std::move(host)), inner_(std::move(inner)) {}
  void wait() override { inner_->wait(); }

 private:
  std::vector<float> host_;
  std::unique_ptr<PendingTransfer> inner_;
};

// A receive lands in host memory; wait() moves it to the device buffer (queued on the
// backend's stream, so it is ordered before whatever reads the buffer next).
class StagedRecv final : public PendingTransfer {
 public:
  StagedRecv(Backend& be, float* device, std::unique_ptr<std::vector<float>> host)
      : be_(be), device_(device), host_(std::move(host)) {}
  void set_inner(std::unique_ptr<PendingTransfer> inner) { inner_ = std::move(inner); }
  float* host() { return host_->data(); }
  void wait() override {
    if (!inner_) return;
    inner_->wait();
    inner_.reset();
    be_.to_device(device_, host_->data(), static_cast<int64_t>(host_->size()));
  }

 private:
  Backend& be_;
  float* device_;
  std::unique_ptr<std::vector<float>> host_;  // a stable address for the inner receive
  std::unique_ptr<PendingTransfer> inner_;
};

class StagedTransport final : public Transport {
 public:
  StagedTransport(std::unique_ptr<Transport> host, Backend& be, bool (*on_device)(const void*))
      : host_(std::move(host)), be_(be), on_device_(on_device) {}

  void send(const float* data, int64_t count, int peer, Tag tag) override {
    if (!on_device_(data)) return host_->send(data, count, peer, tag);
    const std::vector<float> host = download(data, count);
    host_->send(host.data(), count, peer, tag);
  }

  void recv(float* data, int64_t count, int peer, Tag tag) override {
    if (!on_device_(data)) return host_->recv(data, count, peer, tag);
    std::vector<float> host(static_cast<size_t>(count));
    host_->recv(host.data(), count, peer, tag);
    be_.to_device(data, host.data(), count);
  }

  std::unique_ptr<PendingTransfer> isend(const float* data, int64_t count, int peer,
                                         Tag tag) override {
    if (!on_device_(data)) return host_->isend(data, count, peer, tag);
    std::vector<float> host = download(data, count);
    const float* p = host.data();  // a vector's buffer does not move when the vector does
    return std::make_unique<StagedSend>(std::move(host), host_->isend(p, count, peer, tag));
  }

  std::unique_ptr<PendingTransfer> irecv(float* data, int64_t count, int peer, Tag tag) override {
    if (!on_device_(data)) return host_->irecv(data, count, peer, tag);
    auto pending = std::make_unique<StagedRecv>(
        be_, data, std::make_unique<std::vector<float>>(static_cast<size_t>(count)));
    pending->set_inner(host_->irecv(pending->host(), count, peer, tag));
    return pending;
  }

 private:
  // to_host waits for the backend's queued work, so the copy holds what the ops before the
  // send wrote.
  std::vector<float> download(const float* data, int64_t count) {
    GPTQD_CHECK(count >= 0, "transfer of {} floats", count);
    std::vector<float> host(static_cast<size_t>(count));
    be_.to_host(host.data(), data, count);
    return host;
  }

  std::unique_ptr<Transport> host_;
  Backend& be_;
  bool (*on_device_)(const void*);
};

}  // namespace

std::unique_ptr<Transport> make_staged_transport(std::unique_ptr<Transport> host, Backend& be,
                                                 bool (*on_device)(const void*)) {
  GPTQD_CHECK(host && on_device, "make_staged_transport: no transport or no pointer test");
  return std::make_unique<StagedTransport>(std::move(host), be, on_device);
}

}  // namespace gptqd
