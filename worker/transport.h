// Moves activations between pipeline stages. One interface: MPI on CPU (here),
// NCCL on GPU (kernels/cuda, later). Calls block until the buffer may be reused.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>

namespace gptqd {

// Message tags between stages; one per kind so a mismatch is a clear error, not a hang.
enum class Tag : int { kActivations = 100, kRunHeader = 101 };

class Transport {
 public:
  virtual ~Transport() = default;
  // Sends `count` floats to `peer` (a rank of the communicator). Buffers are backend memory.
  virtual void send(const float* data, int64_t count, int peer, Tag tag) = 0;
  virtual void recv(float* data, int64_t count, int peer, Tag tag) = 0;
};

// Host-memory MPI transport over `comm`; messages are split below INT32_MAX elements.
std::unique_ptr<Transport> make_mpi_transport(MPI_Comm comm);

}  // namespace gptqd
