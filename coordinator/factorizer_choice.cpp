#include "coordinator/factorizer_choice.h"

#include "base/log.h"
#include "kernels/cuda/cuda_info.h"
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

FactorRouteInfo factor_route_of(MPI_Comm stage_comm, Backend& be) {
  FactorRouteInfo r;
  int replicas = 1;
  MPI_Comm_size(stage_comm, &replicas);
  const int device = cuda_backend_device(be);
  // Execution agrees on the backend over the whole job; agreed again here so that the
  // collective below is entered by every replica or by none.
  int gpu = device >= 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &gpu, 1, MPI_INT, MPI_MIN, stage_comm);
  if (gpu == 0) return r;
  r.route = FactorRoute::kCusolverMp;
  if (replicas == 1) return r;  // nothing to share: no library is needed
  r.why_host = why_not_cusolvermp(stage_comm, device);
  if (!r.why_host.empty()) r.route = FactorRoute::kScalapackBesideGpu;
  return r;
}

FactorizerChoice choose_factorizer(bool distributed, const FactorRouteInfo& route,
                                   MPI_Comm stage_comm, Backend& be) {
  FactorizerChoice c;
  int replicas = 1;
  MPI_Comm_size(stage_comm, &replicas);
  if (!distributed) return c;
  if (replicas == 1) {
    c.what =
        "factorization: distributed with 1 replica per stage is the replicated one (each stage "
        "factorizes its layers alone)";
    return c;
  }
  if (route.route == FactorRoute::kCusolverMp) {
    auto mp = std::make_unique<CusolverMpFactorizer>(stage_comm, cuda_backend_device(be));
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
      route.why_host.empty() ? "" : ", on the host: " + route.why_host);
  c.factorizer = std::move(sl);
  return c;
}

}  // namespace gptqd
