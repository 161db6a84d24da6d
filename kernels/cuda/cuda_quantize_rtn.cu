// CudaBackend::quantize_rtn: round to nearest with per-column groups, one
// thread per element, the per-element math of kernels/quant_math.h.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/quant_math.h"

namespace gptqd::cuda {
namespace {

__global__ void quantize_rtn_kernel(int64_t rows, int64_t cols, const float* w, int64_t ldw,
                                    const float* scale, const float* zero, const int32_t* col_group,
                                    int maxq, uint8_t* codes, int64_t ldc, float* qw, int64_t ldq) {
  const int64_t n = rows * cols;
  for (int64_t i = grid_start(); i < n; i += grid_stride()) {
    const int64_t r = i / cols, c = i % cols;
    const int64_t g = col_group[c];
    const float s = scale[g * rows + r];
    const float z = zero[g * rows + r];
    const float code = quant_code(w[r * ldw + c], s, z, maxq);
    if (codes) codes[r * ldc + c] = static_cast<uint8_t>(code);
    if (qw) qw[r * ldq + c] = dequant_code(code, s, z);
  }
}

}  // namespace

void launch_quantize_rtn(int64_t rows, int64_t cols, const float* w, int64_t ldw,
                         const float* scale, const float* zero, const int32_t* col_group, int maxq,
                         uint8_t* codes, int64_t ldc, float* qw, int64_t ldq, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0 || (!codes && !qw)) return;
  quantize_rtn_kernel<<<grid_for(rows * cols), kThreads, 0, stream>>>(
      rows, cols, w, ldw, scale, zero, col_group, maxq, codes, ldc, qw, ldq);
  GPTQD_CUDA_LAUNCH_CHECK(quantize_rtn_kernel);
}

void CudaBackend::quantize_rtn(int64_t rows, int64_t cols, const float* w, int64_t ldw,
                               const float* scale, const float* zero, const int32_t* col_group,
                               int maxq, uint8_t* codes, int64_t ldc, float* qw, int64_t ldq) {
  if (rows <= 0 || cols <= 0 || (!codes && !qw)) return;
  activate();
  // col_group is host memory (backend.h); the copy lives until the kernel has
  // run (stream-ordered free).
  const DeviceArray<int32_t> groups = upload_array(col_group, cols);
  launch_quantize_rtn(rows, cols, w, ldw, scale, zero, groups.get(), maxq, codes, ldc, qw, ldq,
                      stream());
}

}  // namespace gptqd::cuda
