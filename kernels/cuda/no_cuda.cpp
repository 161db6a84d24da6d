// Built instead of kernels/cuda/*.cu when GPTQD_CUDA is OFF.
#include "kernels/backend.h"
#include "kernels/check.h"

namespace gptqd {

std::unique_ptr<Backend> make_cuda_backend(int) {
  throw Error("this gptqd was built without CUDA (configure with -DGPTQD_CUDA=ON)");
}

int cuda_device_count() { return 0; }

}  // namespace gptqd
