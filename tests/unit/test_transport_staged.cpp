// make_staged_transport (worker/transport/transport.h): the MPI transport for device buffers
// (parallel.transport: mpi on the CUDA backend). A backend that counts its copies stands in for
// the GPU: buffers the pointer test calls device memory go through to_host before a send and
// to_device once a receive has completed, others go straight, and the bytes arrive unchanged
// in order with several transfers in flight. One process: the rank sends to itself over
// MPI_COMM_SELF, receives posted first.
#include <gtest/gtest.h>
#include <mpi.h>

#include <memory>
#include <vector>

#include "kernels/backend.h"
#include "base/check.h"
#include "tests/delegating_backend.h"
#include "worker/transport/transport.h"

namespace gptqd {
namespace {

class CountingBackend : public test::DelegatingBackend {
 public:
  void to_device(float* d, const float* h, int64_t n) override {
    ++uploads;
    DelegatingBackend::to_device(d, h, n);
  }
  void to_host(float* h, const float* s, int64_t n) override {
    ++downloads;
    DelegatingBackend::to_host(h, s, n);
  }
  int uploads = 0, downloads = 0;
};

bool g_device = true;  // what the pointer test answers
bool on_device(const void*) { return g_device; }

std::vector<float> ramp(int64_t n, float base) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = base + 0.25f * static_cast<float>(i);
  return v;
}

// Three micro-batches in flight each way, as the stage's stream posts them.
void exchange(Transport& tp) {
  constexpr int64_t kN = 1000;
  std::vector<std::vector<float>> sent, got(3, std::vector<float>(kN, -1.0f));
  std::vector<std::unique_ptr<PendingTransfer>> recvs, sends;
  for (int i = 0; i < 3; ++i) recvs.push_back(tp.irecv(got[i].data(), kN, 0, Tag::kActivations));
  for (int i = 0; i < 3; ++i) {
    sent.push_back(ramp(kN, 100.0f * static_cast<float>(i)));
    sends.push_back(tp.isend(sent.back().data(), kN, 0, Tag::kActivations));
  }
  // The host copy of a send was taken at isend: the source may change before the wait.
  sent[0][0] = 12345.0f;
  for (auto& r : recvs) r->wait();
  for (auto& s : sends) s->wait();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i], ramp(kN, 100.0f * static_cast<float>(i))) << i;
}

TEST(StagedTransport, DeviceBuffersGoThroughHostCopies) {
  CountingBackend be;
  g_device = true;
  auto tp = make_staged_transport(make_mpi_transport(MPI_COMM_SELF), be, on_device);
  exchange(*tp);
  EXPECT_EQ(be.downloads, 3);
  EXPECT_EQ(be.uploads, 3);
}

TEST(StagedTransport, HostBuffersGoStraight) {
  CountingBackend be;
  g_device = false;
  auto tp = make_staged_transport(make_mpi_transport(MPI_COMM_SELF), be, on_device);
  exchange(*tp);
  EXPECT_EQ(be.downloads, 0);
  EXPECT_EQ(be.uploads, 0);
}

TEST(StagedTransport, ACountMismatchIsAnError) {
  CountingBackend be;
  g_device = true;
  auto tp = make_staged_transport(make_mpi_transport(MPI_COMM_SELF), be, on_device);
  std::vector<float> in(10), out = ramp(8, 0.0f);
  auto r = tp->irecv(in.data(), 10, 0, Tag::kActivations);
  auto s = tp->isend(out.data(), 8, 0, Tag::kActivations);
  EXPECT_THROW(r->wait(), Error);
  s->wait();
  EXPECT_EQ(be.uploads, 0);  // nothing reaches the device buffer from a failed receive
}

}  // namespace
}  // namespace gptqd
