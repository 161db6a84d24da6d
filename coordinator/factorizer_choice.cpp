#include "coordinator/factorizer_choice.h"

#include "kernels/cuda/cuda_info.h"
#include "base/log.h"
#include "worker/distributed_factor.h"
#include "worker/distributed_factor_gpu.h"
#include "worker/transport/transport_nccl.h"

namespace gptqd {
namespace {

// Why a CUDA stage cannot share cuSOLVERMp; empty when it can. Collective over stage_comm: every
// rank of the stage gets the same answer.
std::string why_not_cusolvermp(MPI_Comm stage_comm, int device) {
  if (!cusolvermp_built()) return "this gptqd was built without cuSOLVERMp";
  const std::string shared = shared_gpu(stage_comm, device);
  if (!shared.empty()) return "cuSOLVERMp needs a GPU per replica: " + shared;
  // The library may load on some ranks only (a node without it): all of them or none.
  std::string why;
  const int here = cusolvermp_loadable(&why) ? 1 : 0;
  int everywhere = here;
  MPI_Allreduce(MPI_IN_PLACE, &everywhere, 1, MPI_INT, MPI_MIN, stage_comm);
  if (everywhere == 1) return "";
  return here ? "cuSOLVERMp does not load on another replica of the stage" : why;
}

}  // namespace

FactorizerChoice choose_factorizer(const std::string& factorization, MPI_Comm stage_comm,
                                   Backend& be) {
  FactorizerChoice c;
  int replicas = 1;
  MPI_Comm_size(stage_comm, &replicas);
  if (factorization != "distributed") return c;
  if (replicas == 1) {
    c.what =
        "factorization: distributed with 1 replica per stage is the replicated one (each stage "
        "factorizes its layers alone)";
    return c;
  }
  const int device = cuda_backend_device(be);
  const std::string why_host = device >= 0 ? why_not_cusolvermp(stage_comm, device) : "";
  if (device >= 0 && why_host.empty()) {
    auto mp = std::make_unique<CusolverMpFactorizer>(stage_comm, device);
    c.what = fmt::format(
        "factorization: distributed, once per stage on a {} x {} cuSOLVERMp grid of its {} "
        "replicas' GPUs (blocks of {})",
        mp->grid_rows(), mp->grid_cols(), replicas, mp->block());
    c.factorizer = std::move(mp);
    return c;
  }
  auto sl = std::make_unique<ScalapackFactorizer>(stage_comm);
  c.what = fmt::format(
      "factorization: distributed, once per stage on a {} x {} ScaLAPACK grid of its {} "
      "replicas (blocks of {}){}",
      sl->grid_rows(), sl->grid_cols(), replicas, sl->block(),
      why_host.empty() ? "" : ", on the host: " + why_host);
  c.factorizer = std::move(sl);
  return c;
}

}  // namespace gptqd
