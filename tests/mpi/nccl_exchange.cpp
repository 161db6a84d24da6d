// Driven by tests/mpi/nccl_exchange.sh under mpirun, one rank per GPU: the NCCL transport
// between processes, each checked against what Open MPI computes from the same host data.
//   nccl_exchange check      allreduce_sum and allgather vs MPI_Allreduce / MPI_Allgather
//                            (bit-identical for 2 ranks: a sum of two floats has one order),
//                            blocking send/recv around a ring, the streaming Transport's
//                            isend/irecv with two micro-batches in flight, and a count
//                            mismatch that must fail on both sides naming both counts.
//   nccl_exchange dead-peer  rank 1 never joins the allreduce rank 0 starts; rank 0's must
//                            fail within its 5 s deadline (ncclCommAbort, no hang).
// Prints "nccl_exchange: ok" on rank 0 when everything held; exits 1 with the reason else.
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "base/check.h"
#include "worker/transport/transport_nccl.h"

namespace gptqd {
namespace {

void require(bool ok, const std::string& what, int rank) {
  if (ok) return;
  throw Error(fmt::format("rank {}: {}", rank, what));
}

std::vector<float> data_of(int seed, int64_t n) {
  std::mt19937 gen(100u + static_cast<uint32_t>(seed));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(gen);
  return v;
}

void check(MPI_Comm world) {
  int rank = 0, size = 0;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &size);
  auto be = make_cuda_backend(select_local_device(world));
  NcclComm comm(world, *be, 60);
  require(comm.rank() == rank && comm.size() == size, "communicator ranks", rank);
  const int64_t n = 300007;  // not a multiple of anything NCCL chunks by

  // allreduce_sum against MPI_Allreduce of the same host data.
  const auto mine = data_of(rank, n);
  Buffer buf(*be, mine);
  comm.allreduce_sum(buf.data(), n);
  std::vector<float> ref(mine.size());
  MPI_Allreduce(mine.data(), ref.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, world);
  const auto got = buf.to_host();
  if (size == 2) {
    require(got == ref, "allreduce_sum differs from MPI_Allreduce", rank);
  } else {
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(double(got[i]) - ref[i]));
    require(worst < 1e-5, fmt::format("allreduce_sum off by {}", worst), rank);
  }

  // allgather, in place, against MPI_Allgather.
  Buffer all(*be, size * n);
  be->to_device(all.data() + rank * n, mine.data(), n);
  comm.allgather(all.data() + rank * n, all.data(), n);
  std::vector<float> ref_all(static_cast<size_t>(size * n));
  MPI_Allgather(mine.data(), static_cast<int>(n), MPI_FLOAT, ref_all.data(), static_cast<int>(n),
                MPI_FLOAT, world);
  require(all.to_host() == ref_all, "allgather differs from MPI_Allgather", rank);

  // A ring of blocking send/recv: even ranks send first, odd ranks receive first.
  auto tp = make_nccl_transport(comm);
  const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  // Each rank sends its own data, so the receiver knows exactly what must arrive.
  Buffer own(*be, mine), in(*be, n);
  if (rank % 2 == 0) {
    tp->send(own.data(), n, next, Tag::kActivations);
    tp->recv(in.data(), n, prev, Tag::kActivations);
  } else {
    tp->recv(in.data(), n, prev, Tag::kActivations);
    tp->send(own.data(), n, next, Tag::kActivations);
  }
  require(in.to_host() == data_of(prev, n), "ring send/recv delivered other data", rank);

  // The stage stream: rank 0 sends four micro-batches to rank 1, two in flight at a time, as
  // worker/stage.cpp's StreamSender / StreamReceiver do.
  const int64_t micro = 4099;
  if (rank < 2 && size >= 2) {
    Buffer acts(*be, 4 * micro);
    const auto src = data_of(7, 4 * micro);
    if (rank == 0) be->to_device(acts.data(), src.data(), 4 * micro);
    std::vector<std::unique_ptr<PendingTransfer>> pending;
    for (int k = 0; k < 4; ++k) {
      if (pending.size() == 2) {
        pending.front()->wait();
        pending.erase(pending.begin());
      }
      float* p = acts.data() + k * micro;
      pending.push_back(rank == 0 ? tp->isend(p, micro, 1, Tag::kActivations)
                                  : tp->irecv(p, micro, 0, Tag::kActivations));
    }
    for (auto& p : pending) p->wait();
    if (rank == 1) require(acts.to_host() == src, "streamed micro-batches differ", rank);

    // A count mismatch is an error on both sides naming both counts, not a hang, and it is
    // caught before any NCCL transfer: the communicator stays usable.
    auto names_both = [&](const Error& e) {
      const std::string what = e.what();
      const bool ok = what.find(std::to_string(micro)) != std::string::npos &&
                      what.find(std::to_string(micro - 1)) != std::string::npos;
      if (!ok) std::fprintf(stderr, "mismatch message: %s\n", e.what());
      return ok;
    };
    bool refused = false;
    try {
      if (rank == 0) {
        tp->send(acts.data(), micro, 1, Tag::kActivations);
      } else {
        tp->recv(acts.data(), micro - 1, 0, Tag::kActivations);
      }
    } catch (const Error& e) {
      refused = names_both(e);
    }
    require(refused, "a count mismatch was not refused naming both counts", rank);
  }
  MPI_Barrier(world);
  comm.allreduce_sum(buf.data(), 1);  // still usable
}

// A collective that a peer never joins (a hung or failed peer): the deadline ends it with
// ncclCommAbort on the rank that waits, instead of a hang.
void dead_peer(MPI_Comm world) {
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  auto be = make_cuda_backend(select_local_device(world));
  NcclComm comm(world, *be, 5);
  Buffer buf(*be, 1 << 20);
  if (rank == 0) {
    const auto t0 = std::chrono::steady_clock::now();
    bool failed = false;
    try {
      comm.allreduce_sum(buf.data(), buf.size());
    } catch (const Error& e) {
      failed = true;
      std::fprintf(stderr, "rank 0 (expected): %s\n", e.what());
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    require(failed, "an allreduce that the peer never joins did not fail", rank);
    require(s < 30, fmt::format("the allreduce failed only after {:.1f} s (deadline 5 s)", s),
            rank);
    std::fprintf(stderr, "rank 0: allreduce without the silent peer failed after %.1f s\n", s);
  } else {
    std::this_thread::sleep_for(std::chrono::seconds(12));  // alive, but never joins
  }
  MPI_Barrier(world);
}

}  // namespace
}  // namespace gptqd

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const std::string mode = argc > 1 ? argv[1] : "check";
  int rc = 0;
  try {
    if (mode == "check") {
      gptqd::check(MPI_COMM_WORLD);
    } else if (mode == "dead-peer") {
      gptqd::dead_peer(MPI_COMM_WORLD);
    } else {
      throw gptqd::Error("usage: nccl_exchange check|dead-peer");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    rc = 1;
  }
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && worst == 0) std::printf("nccl_exchange %s: ok\n", mode.c_str());
  MPI_Finalize();
  return worst;
}
