// A build without cuSOLVERMp (CMake GPTQD_CUSOLVERMP OFF): the factorizer's functions, the
// constructor throwing. quantize falls back to ScaLAPACK before it gets here.
#include "base/check.h"
#include "worker/distributed_factor_gpu.h"

namespace gptqd {

bool cusolvermp_built() { return false; }

bool cusolvermp_loadable(std::string* why) {
  if (why) *why = "this gptqd was built without cuSOLVERMp";
  return false;
}

struct CusolverMpFactorizer::Impl {
  FactorSeconds seconds;
};

CusolverMpFactorizer::CusolverMpFactorizer(MPI_Comm, int, int) {
  throw Error(
      "this gptqd was built without cuSOLVERMp (CMake GPTQD_CUSOLVERMP; scripts/get-cusolvermp.sh "
      "fetches its wheels)");
}
CusolverMpFactorizer::~CusolverMpFactorizer() = default;
bool CusolverMpFactorizer::inverse_cholesky_upper(int64_t, float*) { return false; }
int CusolverMpFactorizer::grid_rows() const { return 0; }
int CusolverMpFactorizer::grid_cols() const { return 0; }
int CusolverMpFactorizer::block() const { return 0; }
const FactorSeconds& CusolverMpFactorizer::last_seconds() const { return impl_->seconds; }

}  // namespace gptqd
