// CUDA device discovery. The CUDA Backend's ops come with the CUDA-backend issue;
// until then make_cuda_backend() says so and `parallel.device: auto` uses the CPU.
#include <cuda_runtime.h>

#include "kernels/backend.h"
#include "kernels/check.h"

namespace gptqd {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver / no device" error
    return 0;
  }
  return n;
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
  throw Error(fmt::format("CUDA device {} found, but this gptqd has no CUDA backend ops yet; "
                          "use parallel.device: cpu",
                          device));
}

}  // namespace gptqd
