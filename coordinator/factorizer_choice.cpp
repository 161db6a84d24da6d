#include "coordinator/factorizer_choice.h"

#include "kernels/cuda/cuda_info.h"
#include "kernels/log.h"
#include "worker/distributed_factor.h"
#include "worker/distributed_factor_gpu.h"
#include "worker/transport_nccl.h"

namespace gptqd {

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
  std::string why_host;
  if (device >= 0 && !cusolvermp_built()) why_host = "this gptqd was built without cuSOLVERMp";
  if (device >= 0 && why_host.empty()) {
    const std::string shared = shared_gpu(stage_comm, device);  // collective
    if (!shared.empty()) why_host = "cuSOLVERMp needs a GPU per replica: " + shared;
  }
  if (device >= 0 && why_host.empty()) {
    // The library may load on some ranks only (a node without it): all of them or none.
    std::string why;
    int loads = cusolvermp_loadable(&why) ? 1 : 0;
    const int here = loads;
    MPI_Allreduce(MPI_IN_PLACE, &loads, 1, MPI_INT, MPI_MIN, stage_comm);
    if (loads == 0)
      why_host = here ? "cuSOLVERMp does not load on another replica of the stage" : why;
  }
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
