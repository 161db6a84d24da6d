#include <algorithm>
#include <climits>

#include "kernels/check.h"
#include "worker/transport.h"

namespace gptqd {
namespace {

constexpr int64_t kMaxChunk = INT_MAX / 2;  // elements per MPI call

class MpiTransport final : public Transport {
 public:
  explicit MpiTransport(MPI_Comm comm) : comm_(comm) {}

  void send(const float* data, int64_t count, int peer, Tag tag) override {
    for (int64_t off = 0; off < count; off += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - off));
      const int rc = MPI_Send(data + off, n, MPI_FLOAT, peer, static_cast<int>(tag), comm_);
      GPTQD_CHECK(rc == MPI_SUCCESS, "MPI_Send of {} floats to rank {} failed ({})", n, peer, rc);
    }
  }

  void recv(float* data, int64_t count, int peer, Tag tag) override {
    for (int64_t off = 0; off < count; off += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - off));
      MPI_Status st;
      const int rc = MPI_Recv(data + off, n, MPI_FLOAT, peer, static_cast<int>(tag), comm_, &st);
      GPTQD_CHECK(rc == MPI_SUCCESS, "MPI_Recv of {} floats from rank {} failed ({})", n, peer, rc);
      int got = 0;
      MPI_Get_count(&st, MPI_FLOAT, &got);
      GPTQD_CHECK(got == n, "rank {} sent {} floats, expected {}", peer, got, n);
    }
  }

 private:
  MPI_Comm comm_;
};

}  // namespace

std::unique_ptr<Transport> make_mpi_transport(MPI_Comm comm) { return std::make_unique<MpiTransport>(comm); }

}  // namespace gptqd
