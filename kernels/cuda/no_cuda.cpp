// Built instead of kernels/cuda/*.cu when GPTQD_CUDA is OFF.
#include "kernels/backend.h"
#include "base/check.h"
#include "kernels/cuda/cuda_info.h"

namespace gptqd {

std::unique_ptr<Backend> make_cuda_backend(int) {
  throw Error("this gptqd was built without CUDA (configure with -DGPTQD_CUDA=ON)");
}

int cuda_device_count() { return 0; }

CudaDeviceInfo cuda_device_info(int) {
  throw Error("this gptqd was built without CUDA (configure with -DGPTQD_CUDA=ON)");
}

int cuda_backend_device(const Backend&) { return -1; }

uint64_t cuda_backend_free_bytes(Backend&) { return 0; }

void* cuda_backend_stream(const Backend& be) {
  throw Error(
      fmt::format("backend '{}' is not a CUDA backend (this gptqd has no CUDA)", be.name()));
}

}  // namespace gptqd
