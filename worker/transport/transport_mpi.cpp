#include <algorithm>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <thread>
#include <vector>

#include "base/check.h"
#include "base/log.h"
#include "worker/transport/liveness.h"
#include "worker/transport/transport.h"

namespace gptqd {
namespace {

constexpr int64_t kMaxChunk = INT_MAX / 2;  // elements per MPI call

void check_rc(int rc, const char* what, int64_t n, int peer) {
  GPTQD_CHECK(rc == MPI_SUCCESS, "{} of {} floats with rank {} failed (MPI error {})", what, n,
              peer, rc);
}

// Polls without sleeping for this long first: short waits keep MPI's latency.
constexpr auto kSpin = std::chrono::microseconds(200);
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

// Test hook (tests/mpi/stall_timeout.sh; worker/stage.h lists the others):
// GPTQD_TEST_STOP_IN_SUM=n makes member 0 of a replica group stop itself (SIGSTOP) in its n-th
// Hessian sum once every member has arrived: a rank stopped in the middle of a blocking
// collective, which only the liveness watchdog ends.
void test_hook_in_sum(int member) {
  static const long stop_at = [] {
    const char* v = std::getenv("GPTQD_TEST_STOP_IN_SUM");
    return v && *v ? std::strtol(v, nullptr, 10) : -1L;
  }();
  static long calls = 0;
  if (stop_at < 1 || member != 0 || ++calls != stop_at) return;
  GPTQD_LOG_WARN("test hook: GPTQD_TEST_STOP_IN_SUM={}: SIGSTOP inside the Hessian sum", stop_at);
  spdlog::default_logger()->flush();
  std::raise(SIGSTOP);
}

// Each collective starts with an arrival barrier (MPI_Ibarrier waited for by
// mpi_wait_yielding): a member that comes early sleeps there instead of spinning, and the job's
// liveness rule applies while it waits, so a replica that stopped while computing is named and
// the job ends. Once every member is there the data moves with MPI's blocking algorithms, which
// progress at full speed: a nonblocking collective advances only when it is polled, and waited
// for by sleeping polls a Hessian of 1M floats took 1.2 s instead of 54 ms with one replica 50 ms
// late (measured, 2 ranks; the barrier first: 54 ms). A member stopped in the middle of the
// data movement (milliseconds to seconds per layer) is waited for by MPI's own blocking loop:
// that part is a BlockingSection, ended by the liveness watchdog (liveness.h).
class MpiReplicaGroup final : public ReplicaGroup {
 public:
  explicit MpiReplicaGroup(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }

  int size() const override { return size_; }
  int rank() const override { return rank_; }

  // Reduce to member 0, then broadcast: every member gets member 0's bytes by construction
  // (MPI_Allreduce does not promise bitwise-equal results on all ranks).
  void allreduce_sum(float* data, int64_t count) override {
    if (size_ == 1) return;
    arrive();
    const BlockingSection busy("the replicas' Hessian sum (MPI_Reduce, MPI_Bcast)");
    test_hook_in_sum(rank_);
    sum_chunks(data, count, 0, true);
  }

  void reduce_sum(float* data, int64_t count, int root) override {
    GPTQD_CHECK(root >= 0 && root < size_, "reduce_sum to member {} of {}", root, size_);
    if (size_ == 1) return;
    arrive();
    const BlockingSection busy("an expert's Hessian sum at its owner (MPI_Reduce)");
    test_hook_in_sum(rank_);
    sum_chunks(data, count, root, false);
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
    arrive();
    const BlockingSection busy("an allreduce among the replicas (MPI_Allreduce)");
    check_rc(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_DOUBLE, mop, comm_),
             "MPI_Allreduce", count, -1);
  }

  // One row is one MPI element (a contiguous type of `cols` floats), so the counts stay far
  // below INT_MAX even for a 57344 x 14336 layer.
  void allgather_rows(float* data, const std::vector<int64_t>& row_offsets, int64_t cols) override {
    GPTQD_CHECK(static_cast<int>(row_offsets.size()) == size_ + 1 && row_offsets[0] == 0,
                "allgather_rows: {} offsets for {} members", row_offsets.size(), size_);
    if (size_ == 1) return;
    GPTQD_CHECK(cols > 0 && cols < INT_MAX && row_offsets.back() < INT_MAX,
                "allgather_rows: {} rows of {} floats exceed MPI's counts", row_offsets.back(),
                cols);
    std::vector<int> counts(size_), displs(size_);
    for (int i = 0; i < size_; ++i) {
      GPTQD_CHECK(row_offsets[i + 1] >= row_offsets[i], "allgather_rows: offsets decrease");
      displs[i] = static_cast<int>(row_offsets[i]);
      counts[i] = static_cast<int>(row_offsets[i + 1] - row_offsets[i]);
    }
    arrive();
    const BlockingSection busy("the replicas' allgather of quantized rows (MPI_Allgatherv)");
    MPI_Datatype row;
    MPI_Type_contiguous(static_cast<int>(cols), MPI_FLOAT, &row);
    MPI_Type_commit(&row);
    const int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, counts.data(),
                                  displs.data(), row, comm_);
    MPI_Type_free(&row);
    check_rc(rc, "MPI_Allgatherv", row_offsets.back() * cols, -1);
  }

  void gather_rows(const float* data, int64_t rows, int64_t cols, int root, std::vector<float>* all,
                   std::vector<int64_t>* offsets) override {
    GPTQD_CHECK(root >= 0 && root < size_ && rows >= 0 && cols > 0 && cols < INT_MAX,
                "gather_rows: {} rows of {} to member {} of {}", rows, cols, root, size_);
    all->clear();
    offsets->clear();
    long long mine = rows;
    std::vector<long long> counts(rank_ == root ? size_ : 0);
    if (size_ > 1) {
      arrive();
      const BlockingSection busy("an expert's routed inputs to its owner (MPI_Gatherv)");
      check_rc(MPI_Gather(&mine, 1, MPI_LONG_LONG, counts.data(), 1, MPI_LONG_LONG, root, comm_),
               "MPI_Gather", 1, root);
    } else {
      counts[0] = mine;
    }
    std::vector<int> n(counts.size()), displs(counts.size());
    if (rank_ == root) {
      offsets->assign(static_cast<size_t>(size_) + 1, 0);
      for (int i = 0; i < size_; ++i) (*offsets)[i + 1] = (*offsets)[i] + counts[i];
      GPTQD_CHECK(offsets->back() < INT_MAX, "gather_rows: {} rows exceed MPI's counts",
                  offsets->back());
      for (int i = 0; i < size_; ++i) {
        n[i] = static_cast<int>(counts[i]);
        displs[i] = static_cast<int>((*offsets)[i]);
      }
      all->resize(static_cast<size_t>(offsets->back() * cols));
    }
    if (size_ == 1) {
      std::copy(data, data + rows * cols, all->begin());
      return;
    }
    const BlockingSection busy("an expert's routed inputs to its owner (MPI_Gatherv)");
    MPI_Datatype row;
    MPI_Type_contiguous(static_cast<int>(cols), MPI_FLOAT, &row);
    MPI_Type_commit(&row);
    const int rc = MPI_Gatherv(data, static_cast<int>(rows), row, all->data(), n.data(),
                               displs.data(), row, root, comm_);
    MPI_Type_free(&row);
    check_rc(rc, "MPI_Gatherv", rows * cols, root);
  }

  void barrier() override { arrive(); }

 private:
  // The sum of data at `root`, kMaxChunk floats per MPI_Reduce, each chunk broadcast from
  // there before the next when `broadcast`.
  void sum_chunks(float* data, int64_t count, int root, bool broadcast) {
    for (int64_t off = 0; off < count; off += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - off));
      const void* send = rank_ == root ? MPI_IN_PLACE : data + off;
      void* recv = rank_ == root ? data + off : nullptr;
      check_rc(MPI_Reduce(send, recv, n, MPI_FLOAT, MPI_SUM, root, comm_), "MPI_Reduce", n, root);
      if (broadcast)
        check_rc(MPI_Bcast(data + off, n, MPI_FLOAT, root, comm_), "MPI_Bcast", n, root);
    }
  }

  // Returns once every member has called it (see the class comment).
  void arrive() {
    MPI_Request r;
    check_rc(MPI_Ibarrier(comm_, &r), "MPI_Ibarrier", 0, -1);
    check_rc(mpi_wait_yielding(&r, MPI_STATUS_IGNORE), "MPI_Ibarrier", 0, -1);
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

int mpi_wait_yielding(MPI_Request* request, MPI_Status* status) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto sleep = kFirstSleep;
  for (;;) {
    int done = 0;
    const int rc = MPI_Test(request, &done, status);
    if (rc != MPI_SUCCESS || done) return rc;
    if (Clock::now() - t0 < kSpin) continue;
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
