// Built instead of worker/transport/transport_nccl.cpp when GPTQD_CUDA is OFF: the same
// functions, each saying that this gptqd has no NCCL.
#include "base/check.h"
#include "worker/transport/transport_nccl.h"

namespace gptqd {
namespace {

[[noreturn]] void no_nccl() {
  throw Error("this gptqd was built without CUDA and NCCL (configure with -DGPTQD_CUDA=ON)");
}

}  // namespace

struct NcclComm::Impl {};

LocalRank local_rank_of(MPI_Comm) { no_nccl(); }
int select_local_device(MPI_Comm, bool) { no_nccl(); }
std::string shared_gpu(MPI_Comm, int) { no_nccl(); }
bool cuda_device_memory(const void*) { return false; }
NcclComm::NcclComm(MPI_Comm, Backend&, double) { no_nccl(); }
NcclComm::~NcclComm() = default;
int NcclComm::rank() const { no_nccl(); }
int NcclComm::size() const { no_nccl(); }
void NcclComm::allreduce_sum(float*, int64_t) { no_nccl(); }
void NcclComm::allgather(const float*, float*, int64_t) { no_nccl(); }
void NcclComm::send(const float*, int64_t, int, Tag) { no_nccl(); }
void NcclComm::recv(float*, int64_t, int, Tag) { no_nccl(); }
std::unique_ptr<Transport> make_nccl_transport(NcclComm&) { no_nccl(); }

}  // namespace gptqd
