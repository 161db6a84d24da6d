// The GPU transport: NCCL between the ranks of an MPI communicator, for the
// activations between pipeline stages (a Transport) and for the collectives
// inside a replica group (Hessian allreduce, allgather of quantized rows).
// Buffers are device memory of a CUDA backend. This header names no CUDA or
// NCCL type; in a build without CUDA every function throws gptqd::Error.
//
// Bootstrap, as nccl-tests does it (src/common.cu): every rank hashes its
// hostname, the hashes are allgathered over MPI, the local rank is the number
// of lower ranks on the same host; the device is chosen from it
// (select_local_device) and the backend made on it; then rank 0 creates the
// NCCL unique id, MPI_Bcast sends it, and every rank joins (NcclComm).
//
// No hang when a peer fails: every NCCL call is followed by a wait that polls
// cudaStreamQuery and ncclCommGetAsyncError until a deadline; on an NCCL
// error or at the deadline the communicator is aborted (ncclCommAbort) and
// gptqd::Error thrown, naming the operation, the peer and the time waited.
// The communicator is non-blocking (ncclConfig_t::blocking = 0), so its
// initialization and connection set-up are bounded too. Point-to-point
// transfers first meet over MPI without a deadline (a stage waits for its
// neighbour as long as the neighbour computes; a dead process ends the MPI job),
// so the deadline bounds only the transfer itself.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/backend.h"
#include "worker/transport/transport.h"

namespace gptqd {

struct LocalRank {
  int rank = 0;  // among the ranks of the communicator on this host, in rank order
  int size = 1;  // ranks of the communicator on this host
};

// nccl-tests' local rank from allgathered hostname hashes. Collective over comm.
LocalRank local_rank_of(MPI_Comm comm);

// Chooses this rank's GPU and makes it current: the local rank when the host
// shows at least as many GPUs as it runs ranks of comm, device 0 when each rank
// sees exactly one GPU (the scheduler bound one per task, e.g. srun
// --gpus-per-task=1). Collective over comm. Throws gptqd::Error when no GPU is
// visible or the host's ranks outnumber its GPUs, unless `share` (the MPI
// transport: ranks may share a GPU), which puts local rank r on GPU r % count.
int select_local_device(MPI_Comm comm, bool share = false);

// Empty when no two ranks of comm use the same GPU (same host, same PCI bus id of
// `device`), else says which do ("host h runs ranks 0 and 1 on GPU 0000:3b:00.0").
// NCCL refuses such a communicator. Collective over comm; the same text on every rank.
std::string shared_gpu(MPI_Comm comm, int device);

// Whether p points to device memory of a GPU (cudaPointerGetAttributes), as opposed to
// host memory, pinned or not. Always false in a build without CUDA.
bool cuda_device_memory(const void* p);

// Default bound on each NCCL operation, in seconds. A collective also waits for
// every peer to reach it (the replicas of a stage reach theirs together); a
// point-to-point transfer is timed only once both sides are in it.
constexpr double kDefaultNcclTimeoutSeconds = 1800;

class NcclComm {
 public:
  // Joins every rank of comm (collective) into one NCCL communicator with the
  // same ranks, on the device of `be`, which must be a CUDA backend and must
  // outlive this. NCCL work is queued on be's stream, so it is ordered after
  // the ops that produced a buffer and before those that read it. timeout_s > 0
  // bounds every later NCCL operation and the initialization (which gets at
  // least 120 s: a cold start discovers the topology).
  NcclComm(MPI_Comm comm, Backend& be, double timeout_s = kDefaultNcclTimeoutSeconds);
  // Finalizes and destroys the communicator (aborts it if that fails or times
  // out). Never throws.
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const;
  int size() const;

  // Every call below is collective over its participants and returns when the
  // buffers may be reused (the backend's stream has completed the operation).

  // data[0:count] = sum over all ranks of their data[0:count], in place (the
  // replicas' Hessian sums). The summation order is NCCL's.
  void allreduce_sum(float* data, int64_t count);
  // recv[r*count : (r+1)*count] = rank r's send[0:count] for every rank r; recv
  // holds size() * count floats. send may be recv + rank() * count (in place).
  void allgather(const float* send, float* recv, int64_t count);
  // Point to point: `count` floats to / from rank `peer`. The two sides first
  // exchange (tag, count) over MPI, with no deadline, so a mismatched pair is an
  // error on both sides naming both instead of a hang or a silent truncation;
  // the payload then goes over NCCL under the deadline. A send returns when
  // the peer has received it (no buffering), as MPI_Ssend.
  void send(const float* data, int64_t count, int peer, Tag tag);
  void recv(float* data, int64_t count, int peer, Tag tag);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A Transport (worker/transport/transport.h) over `comm`, which must outlive it.
std::unique_ptr<Transport> make_nccl_transport(NcclComm& comm);

}  // namespace gptqd
