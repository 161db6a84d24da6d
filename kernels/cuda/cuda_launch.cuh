// Device-side helpers shared by the kernels of kernels/cuda: launch geometry
// and warp/block reductions. Only .cu files include this.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace gptqd::cuda {

// Threads per block of the elementwise and per-row kernels: a multiple of the
// warp size that keeps several blocks resident per SM on sm_80 and sm_90.
constexpr int kThreads = 256;
constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;
// Grid-stride loops cover any n; more blocks than this only add scheduling cost
// (it is several waves on a 132-SM H100).
constexpr int64_t kMaxBlocks = int64_t{1} << 16;

// Blocks for an elementwise kernel over n items (>= 1 so a launch is valid).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(blocks, kMaxBlocks)));
}

// First index and stride of a 1-D grid-stride loop, in int64 (activations of a
// 176B model exceed 2^31 elements).
__device__ __forceinline__ int64_t grid_start() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// Butterfly reductions: lane i adds lane i^o's value, so both hold a + b and
// b + a, which are the same number; every lane ends with the same bits.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = kWarpSize / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = kWarpSize / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}
__device__ __forceinline__ float warp_min(float v) {
  for (int o = kWarpSize / 2; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// Block-wide sum / max: every thread of the block must call it, and gets the
// same value (each thread adds the per-warp partials in the same order).
// `scratch` is shared memory of at least 32 elements; the leading barrier lets
// a kernel call these back to back with the same scratch.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  v = warp_sum(v);
  const int warps = (blockDim.x + kWarpSize - 1) / kWarpSize;
  __syncthreads();
  if (threadIdx.x % kWarpSize == 0) scratch[threadIdx.x / kWarpSize] = v;
  __syncthreads();
  T total = 0;
  for (int k = 0; k < warps; ++k) total += scratch[k];
  return total;
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  v = warp_max(v);
  const int warps = (blockDim.x + kWarpSize - 1) / kWarpSize;
  __syncthreads();
  if (threadIdx.x % kWarpSize == 0) scratch[threadIdx.x / kWarpSize] = v;
  __syncthreads();
  float m = scratch[0];
  for (int k = 1; k < warps; ++k) m = fmaxf(m, scratch[k]);
  return m;
}

}  // namespace gptqd::cuda
