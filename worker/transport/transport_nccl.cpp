// The NCCL transport (worker/transport/transport_nccl.h). Built only with CUDA; without
// it worker/transport/no_nccl.cpp provides the same functions, throwing.
#include "worker/transport/transport_nccl.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/check.h"
#include "kernels/cuda/cuda_info.h"
#include "base/log.h"
#include "worker/transport/nccl_util.h"

namespace gptqd {
namespace {

using Clock = std::chrono::steady_clock;

// How often a waiting rank looks at its stream and the communicator: short
// next to any transfer worth sending, long enough not to burn a core.
constexpr auto kPollInterval = std::chrono::microseconds(50);
// Finalizing only flushes operations we already waited for; it needs no peer.
constexpr double kFinalizeTimeoutSeconds = 60;
// The least time NCCL's initialization gets, whatever the operation timeout.
constexpr double kMinInitSeconds = 120;

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown-host";
  return name;
}

// nccl-tests' getHostHash: djb2 over the hostname and the kernel's boot id
// (which tells apart containers that share a hostname on different machines).
uint64_t host_hash() {
  std::string id = host_name();
  if (std::FILE* f = std::fopen("/proc/sys/kernel/random/boot_id", "r")) {
    char boot[64] = {};
    if (std::fgets(boot, sizeof boot, f)) id += boot;
    std::fclose(f);
  }
  uint64_t h = 5381;
  for (unsigned char c : id) h = ((h << 5) + h) ^ c;
  return h;
}

void mpi_check(int rc, const char* call) {
  GPTQD_CHECK(rc == MPI_SUCCESS, "{} failed (MPI error {})", call, rc);
}

}  // namespace

LocalRank local_rank_of(MPI_Comm comm) {
  int rank = 0, size = 1;
  mpi_check(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  std::vector<uint64_t> hashes(static_cast<size_t>(size));
  hashes[rank] = host_hash();
  mpi_check(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, hashes.data(), sizeof(uint64_t),
                          MPI_BYTE, comm),
            "MPI_Allgather of host hashes");
  LocalRank local{0, 0};
  for (int p = 0; p < size; ++p) {
    if (hashes[p] != hashes[rank]) continue;
    if (p < rank) ++local.rank;
    ++local.size;
  }
  return local;
}

int select_local_device(MPI_Comm comm, bool share) {
  const LocalRank local = local_rank_of(comm);
  const int count = cuda_device_count();
  if (count == 0) throw Error(fmt::format("no CUDA device is visible on host {}", host_name()));
  int device = 0;
  if (count >= local.size || share) {
    device = local.rank % count;
  } else if (count != 1) {
    throw Error(fmt::format(
        "host {} runs {} ranks but shows {} GPUs; run at most one rank per GPU (or give each "
        "rank exactly one GPU, e.g. srun --gpus-per-task=1)",
        host_name(), local.size, count));
  }
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  return device;
}

struct NcclComm::Impl {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;  // the backend's
  int device = -1;
  int rank = 0, size = 1;
  double timeout_s = kDefaultNcclTimeoutSeconds;
  // A duplicate of the MPI communicator for the rendezvous of point-to-point transfers (its
  // own tag space: nothing else can match these messages).
  MPI_Comm mpi = MPI_COMM_NULL;

  void abort() noexcept {
    if (comm) ncclCommAbort(comm);
    comm = nullptr;
  }

  [[noreturn]] void fail(const std::string& what, const std::string& why) {
    const std::string last = comm ? ncclGetLastError(comm) : "";
    abort();
    throw Error(fmt::format("rank {}: NCCL {} {}{}; communicator aborted", rank, what, why,
                            last.empty() ? "" : " (" + last + ")"));
  }

  // Starts an operation: this rank's device current, a live communicator, and
  // the operation's deadline.
  Clock::time_point begin(double seconds) {
    GPTQD_CHECK(comm != nullptr, "rank {}: the NCCL communicator was aborted by an earlier error",
                rank);
    cuda_check(cudaSetDevice(device), "cudaSetDevice");
    return Clock::now() +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  // After an NCCL call: on a non-blocking communicator the call may return
  // ncclInProgress, and no other NCCL call (nor work on its stream) may be
  // issued until the communicator's state leaves it.
  void settle(ncclResult_t result, const std::string& what, Clock::time_point deadline,
              double seconds) {
    if (result == ncclSuccess) return;
    if (result != ncclInProgress) fail(what, fmt::format("failed: {}", ncclGetErrorString(result)));
    for (;;) {
      ncclResult_t state = ncclSuccess;
      const ncclResult_t query = ncclCommGetAsyncError(comm, &state);
      if (query != ncclSuccess)
        fail(what, fmt::format("state query failed: {}", ncclGetErrorString(query)));
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) fail(what, fmt::format("failed: {}", ncclGetErrorString(state)));
      if (Clock::now() >= deadline) fail(what, fmt::format("timed out after {} s", seconds));
      std::this_thread::sleep_for(kPollInterval);
    }
  }
  void settle(ncclResult_t result, const std::string& what, Clock::time_point deadline) {
    settle(result, what, deadline, timeout_s);
  }

  // nccl-tests' testStreamSynchronize: wait for the stream without blocking in
  // the driver, so that a dead peer (an NCCL kernel that never finishes) is
  // noticed through the communicator's error state or the deadline.
  void wait(const std::string& what, Clock::time_point deadline) {
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady)
        fail(what, fmt::format("failed on the device: {}: {}", cudaGetErrorName(q),
                               cudaGetErrorString(q)));
      ncclResult_t state = ncclSuccess;
      const ncclResult_t query = ncclCommGetAsyncError(comm, &state);
      if (query != ncclSuccess)
        fail(what, fmt::format("state query failed: {}", ncclGetErrorString(query)));
      if (state != ncclSuccess && state != ncclInProgress)
        fail(what, fmt::format("failed: {}", ncclGetErrorString(state)));
      if (Clock::now() >= deadline)
        fail(what, fmt::format("did not complete within {} s (is the peer alive?)", timeout_s));
      std::this_thread::sleep_for(kPollInterval);
    }
  }

  void check_peer(int peer, int64_t count) const {
    GPTQD_CHECK(peer >= 0 && peer < size && peer != rank,
                "rank {}: NCCL peer {} is not another rank of {}", rank, peer, size);
    GPTQD_CHECK(count >= 0, "rank {}: NCCL message of {} floats", rank, count);
  }
};

NcclComm::NcclComm(MPI_Comm mpi, Backend& be, double timeout_s) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  GPTQD_CHECK(timeout_s > 0, "NCCL timeout must be positive, got {}", timeout_s);
  m.timeout_s = timeout_s;
  m.device = cuda_backend_device(be);
  GPTQD_CHECK(m.device >= 0, "the NCCL transport needs a CUDA backend, got '{}'", be.name());
  m.stream = static_cast<cudaStream_t>(cuda_backend_stream(be));
  mpi_check(MPI_Comm_rank(mpi, &m.rank), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(mpi, &m.size), "MPI_Comm_size");
  cuda_check(cudaSetDevice(m.device), "cudaSetDevice");
  mpi_check(MPI_Comm_dup(mpi, &m.mpi), "MPI_Comm_dup");

  const ncclUniqueId id = nccl_unique_id(mpi);

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  // A cold initialization (topology discovery, proxy threads) can take longer than a short
  // operation timeout: it gets at least kMinInitSeconds.
  const double init_s = std::max(timeout_s, kMinInitSeconds);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(init_s));
  const ncclResult_t r = ncclCommInitRankConfig(&m.comm, m.size, id, m.rank, &config);
  m.settle(r, fmt::format("initialization of {} ranks on device {}", m.size, m.device), deadline,
           init_s);
  GPTQD_LOG_DEBUG("NCCL communicator ready: rank {} of {} on device {}", m.rank, m.size, m.device);
}

NcclComm::~NcclComm() {
  Impl& m = *impl_;
  if (m.mpi != MPI_COMM_NULL) MPI_Comm_free(&m.mpi);
  if (!m.comm) return;
  try {
    const auto deadline = m.begin(kFinalizeTimeoutSeconds);
    m.settle(ncclCommFinalize(m.comm), "finalize", deadline, kFinalizeTimeoutSeconds);
    ncclCommDestroy(m.comm);
    m.comm = nullptr;
  } catch (const std::exception& e) {
    GPTQD_LOG_ERROR("{}", e.what());
    m.abort();
  }
}

int NcclComm::rank() const { return impl_->rank; }
int NcclComm::size() const { return impl_->size; }

void NcclComm::allreduce_sum(float* data, int64_t count) {
  GPTQD_CHECK(count >= 0, "allreduce of {} floats", count);
  if (count == 0) return;
  Impl& m = *impl_;
  const auto deadline = m.begin(m.timeout_s);
  const std::string what = fmt::format("allreduce of {} floats", count);
  m.settle(
      ncclAllReduce(data, data, static_cast<size_t>(count), ncclFloat, ncclSum, m.comm, m.stream),
      what, deadline);
  m.wait(what, deadline);
}

void NcclComm::allgather(const float* send, float* recv, int64_t count) {
  GPTQD_CHECK(count >= 0, "allgather of {} floats", count);
  if (count == 0) return;
  Impl& m = *impl_;
  const auto deadline = m.begin(m.timeout_s);
  const std::string what = fmt::format("allgather of {} floats per rank", count);
  m.settle(ncclAllGather(send, recv, static_cast<size_t>(count), ncclFloat, m.comm, m.stream), what,
           deadline);
  m.wait(what, deadline);
}

// Point to point in two steps. The rendezvous goes over MPI and has no deadline: a stage may
// wait for its neighbour for as long as the neighbour computes (a whole stage of blocks), and
// a dead process ends the MPI job anyway. The receiver announces (tag, count); the sender
// answers with its own and whether they match, so a mismatch is an error on both sides naming
// both. Only then does the payload go over NCCL, under the deadline: both sides are in the
// transfer, so a timeout there means a peer or link has failed.
namespace {

constexpr int kReadyTag = 1, kGoTag = 2;

void mpi_wait(MPI_Request* r, const std::string& what) {
  if (mpi_wait_yielding(r, MPI_STATUS_IGNORE) != MPI_SUCCESS)
    throw Error(fmt::format("{}: the MPI rendezvous failed", what));
}

}  // namespace

void NcclComm::send(const float* data, int64_t count, int peer, Tag tag) {
  Impl& m = *impl_;
  m.check_peer(peer, count);
  const std::string what =
      fmt::format("send of {} floats to rank {} (tag {})", count, peer, static_cast<int>(tag));
  int64_t ready[2] = {0, 0};
  MPI_Request r;
  mpi_check(MPI_Irecv(ready, 2, MPI_INT64_T, peer, kReadyTag, m.mpi, &r), "MPI_Irecv");
  mpi_wait(&r, what);
  const bool match = ready[0] == static_cast<int64_t>(tag) && ready[1] == count;
  const int64_t go[3] = {match ? 1 : 0, static_cast<int64_t>(tag), count};
  mpi_check(MPI_Send(go, 3, MPI_INT64_T, peer, kGoTag, m.mpi), "MPI_Send");
  GPTQD_CHECK(match, "rank {}: {} does not match: rank {} expects {} floats with tag {}", m.rank,
              what, peer, ready[1], ready[0]);
  if (count == 0) return;
  const auto deadline = m.begin(m.timeout_s);
  m.settle(ncclSend(data, static_cast<size_t>(count), ncclFloat, peer, m.comm, m.stream), what,
           deadline);
  m.wait(what, deadline);
}

void NcclComm::recv(float* data, int64_t count, int peer, Tag tag) {
  Impl& m = *impl_;
  m.check_peer(peer, count);
  const std::string what =
      fmt::format("recv of {} floats from rank {} (tag {})", count, peer, static_cast<int>(tag));
  const int64_t ready[2] = {static_cast<int64_t>(tag), count};
  mpi_check(MPI_Send(ready, 2, MPI_INT64_T, peer, kReadyTag, m.mpi), "MPI_Send");
  int64_t go[3] = {0, 0, 0};
  MPI_Request r;
  mpi_check(MPI_Irecv(go, 3, MPI_INT64_T, peer, kGoTag, m.mpi, &r), "MPI_Irecv");
  mpi_wait(&r, what);
  GPTQD_CHECK(go[0] == 1, "rank {}: {} does not match: rank {} sends {} floats with tag {}", m.rank,
              what, peer, go[2], go[1]);
  if (count == 0) return;
  const auto deadline = m.begin(m.timeout_s);
  m.settle(ncclRecv(data, static_cast<size_t>(count), ncclFloat, peer, m.comm, m.stream), what,
           deadline);
  m.wait(what, deadline);
}

std::string shared_gpu(MPI_Comm comm, int device) {
  int rank = 0, size = 1;
  mpi_check(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  // (host hash, PCI bus id) of every rank's GPU: ranks that see different device numbers
  // (CUDA_VISIBLE_DEVICES per task) may still hold the same GPU.
  struct Where {
    uint64_t host = 0;
    char bus[32] = {};
  } mine;
  mine.host = host_hash();
  cuda_check(cudaDeviceGetPCIBusId(mine.bus, sizeof mine.bus - 1, device), "cudaDeviceGetPCIBusId");
  std::vector<Where> all(static_cast<size_t>(size));
  mpi_check(MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, comm),
            "MPI_Allgather of GPU bus ids");
  for (int a = 0; a < size; ++a) {
    for (int b = a + 1; b < size; ++b) {
      if (all[a].host != all[b].host || std::strcmp(all[a].bus, all[b].bus) != 0) continue;
      return fmt::format("{} runs ranks {} and {} on GPU {}",
                         all[a].host == mine.host ? "host " + host_name() : "a host", a, b,
                         all[a].bus);
    }
  }
  return "";
}

bool cuda_device_memory(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();  // an unknown host pointer (older runtimes): not an error to keep
    return false;
  }
  return attr.type == cudaMemoryTypeDevice;
}

namespace {

class NcclTransport final : public Transport {
 public:
  explicit NcclTransport(NcclComm& comm) : comm_(comm) {}
  void send(const float* data, int64_t count, int peer, Tag tag) override {
    comm_.send(data, count, peer, tag);
  }
  void recv(float* data, int64_t count, int peer, Tag tag) override {
    comm_.recv(data, count, peer, tag);
  }

 private:
  NcclComm& comm_;
};

}  // namespace

std::unique_ptr<Transport> make_nccl_transport(NcclComm& comm) {
  return std::make_unique<NcclTransport>(comm);
}

}  // namespace gptqd
