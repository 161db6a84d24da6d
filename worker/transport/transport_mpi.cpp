#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>
#include <vector>

#include "base/check.h"
#include "worker/transport/liveness.h"
#include "worker/transport/transport.h"

namespace gptqd {
namespace {

constexpr int64_t kMaxChunk = INT_MAX / 2;  // elements per MPI call

void check_rc(int rc, const char* what, int64_t n, int peer) {
  GPTQD_CHECK(rc == MPI_SUCCESS, "{} of {} floats with rank {} failed (MPI error {})", what, n,
              peer, rc);
}

constexpr auto kFirstSleep = std::chrono::microseconds(50);
constexpr auto kMaxSleep = std::chrono::microseconds(2000);

// One logical transfer: one MPI request per chunk.
class MpiPending final : public PendingTransfer {
 public:
  MpiPending(bool is_recv, int peer) : is_recv_(is_recv), peer_(peer) {}
  ~MpiPending() override {
    // Not waited for: an exception is unwinding towards MPI_Abort. Waiting could hang on a dead
    // peer, so the requests are released; a receive is cancelled first so nothing lands later.
    for (MPI_Request& r : reqs_) {
      if (r == MPI_REQUEST_NULL) continue;
      if (is_recv_) MPI_Cancel(&r);
      MPI_Request_free(&r);
    }
  }

  void add(MPI_Request r, int expected) {
    reqs_.push_back(r);
    expected_.push_back(expected);
  }

  void wait() override {
    for (size_t i = 0; i < reqs_.size(); ++i) {
      if (reqs_[i] == MPI_REQUEST_NULL) continue;
      MPI_Status st;
      check_rc(mpi_wait_yielding(&reqs_[i], &st), is_recv_ ? "MPI_Irecv" : "MPI_Issend",
               expected_[i], peer_);
      if (is_recv_) {
        int got = 0;
        MPI_Get_count(&st, MPI_FLOAT, &got);
        GPTQD_CHECK(got == expected_[i], "rank {} sent {} floats, expected {}", peer_, got,
                    expected_[i]);
      }
    }
  }

 private:
  bool is_recv_;
  int peer_;
  std::vector<MPI_Request> reqs_;
  std::vector<int> expected_;
};

class MpiTransport final : public Transport {
 public:
  explicit MpiTransport(MPI_Comm comm) : comm_(comm) {}

  // MPI_Send / MPI_Recv in effect (standard mode: a small send may complete before the
  // receive), waited for by mpi_wait_yielding: no core kept busy, the liveness rule applied.
  void send(const float* data, int64_t count, int peer, Tag tag) override {
    MpiPending p(false, peer);
    for (int64_t off = 0; off < count; off += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - off));
      MPI_Request r;
      check_rc(MPI_Isend(data + off, n, MPI_FLOAT, peer, static_cast<int>(tag), comm_, &r),
               "MPI_Isend", n, peer);
      p.add(r, n);
    }
    p.wait();
  }

  void recv(float* data, int64_t count, int peer, Tag tag) override {
    irecv(data, count, peer, tag)->wait();
  }

  // MPI_Issend: complete only once the receive has been matched, so a bounded number of
  // transfers in flight is a bounded amount of buffering, whatever MPI's eager limit.
  std::unique_ptr<PendingTransfer> isend(const float* data, int64_t count, int peer,
                                         Tag tag) override {
    auto p = std::make_unique<MpiPending>(false, peer);
    for (int64_t off = 0; off < count; off += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - off));
      MPI_Request r;
      check_rc(MPI_Issend(data + off, n, MPI_FLOAT, peer, static_cast<int>(tag), comm_, &r),
               "MPI_Issend", n, peer);
      p->add(r, n);
    }
    return p;
  }

  std::unique_ptr<PendingTransfer> irecv(float* data, int64_t count, int peer, Tag tag) override {
    auto p = std::make_unique<MpiPending>(true, peer);
    for (int64_t off = 0; off < count; off += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - off));
      MPI_Request r;
      check_rc(MPI_Irecv(data + off, n, MPI_FLOAT, peer, static_cast<int>(tag), comm_, &r),
               "MPI_Irecv", n, peer);
      p->add(r, n);
    }
    return p;
  }

 private:
  MPI_Comm comm_;
};

// Nonblocking collectives in chunks of kPollChunk elements, each waited for by
// mpi_wait_yielding with kCollectiveSpin. A nonblocking collective advances only while it is
// polled, and a sleeping wait slows a large one down by orders of magnitude (whole collectives
// waited for with the 200 us spin of the other waits made a 1 x 2 replica job take twice as
// long as one rank), so each chunk is small enough to finish within the spin when every member
// is there: while data flows the waits spin as MPI's blocking algorithms would. Only a wait for an absent member (a rank still
// computing, or stopped) outlasts the spin; it then sleeps, leaving the core, and applies the
// job's liveness rule instead of spinning forever.
constexpr int64_t kPollChunk = int64_t{1} << 20;  // 4 MiB of floats
constexpr std::chrono::microseconds kCollectiveSpin{20000};

void wait_collective(MPI_Request* r, const char* what, int64_t n, int peer) {
  check_rc(mpi_wait_yielding(r, MPI_STATUS_IGNORE, kCollectiveSpin), what, n, peer);
}

class MpiReplicaGroup final : public ReplicaGroup {
 public:
  explicit MpiReplicaGroup(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }

  int size() const override { return size_; }
  int rank() const override { return rank_; }

  // Reduce to member 0, then broadcast: every member gets member 0's bytes by construction
  // (MPI_Allreduce does not promise bitwise-equal results on all ranks). Elementwise, so the
  // chunking does not change what is summed with what.
  void allreduce_sum(float* data, int64_t count) override {
    if (size_ == 1) return;
    for (int64_t off = 0; off < count; off += kPollChunk) {
      const int n = static_cast<int>(std::min(kPollChunk, count - off));
      const void* send = rank_ == 0 ? MPI_IN_PLACE : data + off;
      void* recv = rank_ == 0 ? data + off : nullptr;
      MPI_Request r;
      check_rc(MPI_Ireduce(send, recv, n, MPI_FLOAT, MPI_SUM, 0, comm_, &r), "MPI_Ireduce", n, 0);
      wait_collective(&r, "MPI_Ireduce", n, 0);
      check_rc(MPI_Ibcast(data + off, n, MPI_FLOAT, 0, comm_, &r), "MPI_Ibcast", n, 0);
      wait_collective(&r, "MPI_Ibcast", n, 0);
    }
  }

  void allreduce(double* data, int64_t count, ReduceOp op) override {
    if (size_ == 1) return;
    MPI_Op mop = MPI_SUM;
    switch (op) {
      case ReduceOp::kSum:
        mop = MPI_SUM;
        break;
      case ReduceOp::kMax:
        mop = MPI_MAX;
        break;
      case ReduceOp::kMin:
        mop = MPI_MIN;
        break;
    }
    GPTQD_CHECK(count < INT_MAX, "allreduce of {} doubles exceeds one MPI call", count);
    MPI_Request r;
    check_rc(
        MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_DOUBLE, mop, comm_, &r),
        "MPI_Iallreduce", count, -1);
    wait_collective(&r, "MPI_Iallreduce", count, -1);
  }

  // Member i's rows are broadcast from member i, in chunks (above): what an allgather moves.
  void allgather_rows(float* data, const std::vector<int64_t>& row_offsets, int64_t cols) override {
    GPTQD_CHECK(static_cast<int>(row_offsets.size()) == size_ + 1 && row_offsets[0] == 0,
                "allgather_rows: {} offsets for {} members", row_offsets.size(), size_);
    if (size_ == 1) return;
    GPTQD_CHECK(cols > 0, "allgather_rows: rows of {} floats", cols);
    for (int i = 0; i < size_; ++i) {
      GPTQD_CHECK(row_offsets[i + 1] >= row_offsets[i], "allgather_rows: offsets decrease");
      float* part = data + row_offsets[i] * cols;
      const int64_t count = (row_offsets[i + 1] - row_offsets[i]) * cols;
      for (int64_t off = 0; off < count; off += kPollChunk) {
        const int n = static_cast<int>(std::min(kPollChunk, count - off));
        MPI_Request r;
        check_rc(MPI_Ibcast(part + off, n, MPI_FLOAT, i, comm_, &r), "MPI_Ibcast", n, i);
        wait_collective(&r, "MPI_Ibcast", n, i);
      }
    }
  }

  void barrier() override {
    MPI_Request r;
    check_rc(MPI_Ibarrier(comm_, &r), "MPI_Ibarrier", 0, -1);
    wait_collective(&r, "MPI_Ibarrier", 0, -1);
  }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

int mpi_wait_yielding(MPI_Request* request, MPI_Status* status, std::chrono::microseconds spin) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto sleep = kFirstSleep;
  for (;;) {
    int done = 0;
    const int rc = MPI_Test(request, &done, status);
    if (rc != MPI_SUCCESS || done) return rc;
    if (Clock::now() - t0 < spin) continue;
    // Past the spin: a wait that may be long. The job's liveness rule is applied here (it
    // throws StallError once a rank has been silent for the timeout).
    if (Liveness* monitor = current_liveness()) monitor->poll(t0);
    std::this_thread::sleep_for(sleep);
    sleep = std::min(2 * sleep, kMaxSleep);
  }
}

std::unique_ptr<Transport> make_mpi_transport(MPI_Comm comm) {
  return std::make_unique<MpiTransport>(comm);
}

std::unique_ptr<ReplicaGroup> make_mpi_replica_group(MPI_Comm comm) {
  return std::make_unique<MpiReplicaGroup>(comm);
}

}  // namespace gptqd
