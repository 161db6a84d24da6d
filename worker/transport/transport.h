// How ranks of a job exchange data (DESIGN.md §3 steps 4-5):
//  - Transport: point to point between pipeline stages (replica r of stage s sends its
//    activations to replica r of stage s + 1). One interface: MPI (here), NCCL on GPU, and
//    MPI through host memory for device buffers (make_staged_transport).
//  - ReplicaGroup: collectives among the replicas of one stage (the same blocks, different
//    samples and rows): the Hessian sum, the allgather of the quantized weights, the layer
//    stats, and the barrier before a block is marked complete.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace gptqd {

class Backend;

// Message tags between stages; one per kind so a mismatch is a clear error, not a hang.
enum class Tag : int { kActivations = 100, kRunHeader = 101 };

// A transfer started by Transport::isend / irecv.
class PendingTransfer {
 public:
  // Destroying a transfer that was not waited for does not wait (an exception may be
  // unwinding towards MPI_Abort, and waiting could hang on a dead peer): the buffer must then
  // not be reused, which holds because the process is about to end.
  virtual ~PendingTransfer() = default;
  // Returns when a send's buffer may be reused / a receive's buffer holds the data. Throws
  // gptqd::Error when the transfer failed or a receive got a different element count.
  virtual void wait() = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Sends `count` floats to `peer` (a rank of the communicator). Buffers are backend memory
  // the implementation can read (host memory for the MPI transport).
  virtual void send(const float* data, int64_t count, int peer, Tag tag) = 0;
  // Receives exactly `count` floats from `peer`; another count is an error.
  virtual void recv(float* data, int64_t count, int peer, Tag tag) = 0;

  // Optional (micro-batch streaming): start a transfer and return at once. The buffer must
  // stay untouched until wait(). A send completes only once the peer has started to receive
  // it (synchronous mode), so a sender with k transfers in flight holds at most k messages
  // of buffering anywhere. Messages between two ranks with one tag arrive in order.
  // Default: the blocking send / recv, returning a finished transfer (correct, no overlap).
  virtual std::unique_ptr<PendingTransfer> isend(const float* data, int64_t count, int peer,
                                                 Tag tag);
  virtual std::unique_ptr<PendingTransfer> irecv(float* data, int64_t count, int peer, Tag tag);
};

namespace transport_detail {
class FinishedTransfer final : public PendingTransfer {
 public:
  void wait() override {}
};
}  // namespace transport_detail

inline std::unique_ptr<PendingTransfer> Transport::isend(const float* data, int64_t count, int peer,
                                                         Tag tag) {
  send(data, count, peer, tag);
  return std::make_unique<transport_detail::FinishedTransfer>();
}

inline std::unique_ptr<PendingTransfer> Transport::irecv(float* data, int64_t count, int peer,
                                                         Tag tag) {
  recv(data, count, peer, tag);
  return std::make_unique<transport_detail::FinishedTransfer>();
}

// Host-memory MPI transport over `comm` (not owned; must outlive it); messages are split
// below INT32_MAX elements.
std::unique_ptr<Transport> make_mpi_transport(MPI_Comm comm);

// A transport for a backend whose buffers may be device memory, over one that moves host
// memory (`host`, e.g. make_mpi_transport: the Open MPI gptqd links is not CUDA-aware). A
// buffer for which on_device(p) is true goes through host memory: copied with be.to_host
// before a send (which waits for the ops that wrote it), and with be.to_device once a receive
// has completed (queued before the ops that read it); other buffers go as they are. Each
// transfer in flight holds one host copy of its message. This is parallel.transport: mpi on
// the CUDA backend (several ranks sharing one GPU, which NCCL refuses).
std::unique_ptr<Transport> make_staged_transport(std::unique_ptr<Transport> host, Backend& be,
                                                 bool (*on_device)(const void*));

enum class ReduceOp { kSum, kMax, kMin };

// Collectives among the replicas of one stage; every member calls each one in the same order.
// Buffers are host memory (Hessians and quantized weights are on the host when they are
// exchanged: GPTQ takes its H from the host).
class ReplicaGroup {
 public:
  virtual ~ReplicaGroup() = default;
  virtual int size() const = 0;
  virtual int rank() const = 0;
  // In place: data[i] becomes the sum over the members of their data[i]. Every member gets
  // the same bytes (replicas must quantize their rows with the same H), and the order of the
  // summation depends only on the group's size, so results do not depend on which stage the
  // group serves.
  virtual void allreduce_sum(float* data, int64_t count) = 0;
  // In place at `root`: its data[i] becomes the sum over the members of their data[i]; the
  // other members' data is left unspecified (a routed expert's Hessian, which only its owner
  // needs: ReplicaContext::shard_experts). The summation order depends only on the group's
  // size and the root.
  virtual void reduce_sum(float* data, int64_t count, int root) = 0;
  // In place, `count` doubles (layer statistics, completion maps).
  virtual void allreduce(double* data, int64_t count, ReduceOp op) = 0;
  // In place: data is [row_offsets.back(), cols] row-major; member i provides rows
  // [row_offsets[i], row_offsets[i+1]) and on return every member holds all rows.
  // row_offsets has size() + 1 entries, non-decreasing, starting at 0.
  virtual void allgather_rows(float* data, const std::vector<int64_t>& row_offsets,
                              int64_t cols) = 0;
  // Rows to one member: every member gives `rows` rows of `cols` floats (any count, 0
  // included); at `root`, *all becomes their concatenation in member order and *offsets
  // (size() + 1 entries) where each member's rows start; the others' outputs are cleared.
  // (A routed expert's captured inputs sent to its owner: ReplicaContext::shard_experts.)
  virtual void gather_rows(const float* data, int64_t rows, int64_t cols, int root,
                           std::vector<float>* all, std::vector<int64_t>* offsets) = 0;
  virtual void barrier() = 0;
};

// MPI_Wait without keeping a core busy: polls with MPI_Test, sleeping between polls (50 us,
// doubling up to 2 ms) once the request has not completed for a while. A rank waiting for the
// previous stage (seconds to minutes), or for a stopped peer, then leaves the cores to the
// ranks that compute, which matters when ranks share cores (the CPU backend, oversubscribed
// test runs); the added latency is at most a couple of milliseconds per wait. While it sleeps
// it applies the job's liveness rule (liveness.h): throws StallError when a rank of the job
// has made no progress for parallel.stall_timeout. Returns MPI_Test's error code.
int mpi_wait_yielding(MPI_Request* request, MPI_Status* status);

// The replicas of one stage as an MPI communicator (not owned; must outlive the group).
std::unique_ptr<ReplicaGroup> make_mpi_replica_group(MPI_Comm comm);

}  // namespace gptqd
