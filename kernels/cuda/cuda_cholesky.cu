// CudaBackend::inverse_cholesky_upper: U upper triangular with H^-1 = U^T U,
// in fp64 with cuSOLVER's 64-bit API (matrices of 57344^2 elements exceed the
// 32-bit API's index range).
//
// Why fp64: see docs/gpu.md. In short, the factorizations cost O(n^3) once
// per layer while the sweep that uses U costs O(rows n^2), and fp32 loses most
// digits of U (or fails) on the ill-conditioned Hessians of real layers; the
// CPU twin also factorizes in fp64.
//
// The route: two factorizations instead of the reference's three (Cholesky of
// H, inverse, Cholesky of the inverse), and no explicit H^-1. With P the
// reversal permutation (P = P^T = P^-1, (P M P)[i, j] = M[n-1-i, n-1-j]):
//   1. P H P = R R^T, R lower triangular with a positive diagonal (potrf).
//   2. Then H = (P R P)(P R P)^T, and W = P R P is UPPER triangular (reversing
//      both indices of a lower triangular matrix). So H^-1 = W^-T W^-1 =
//      (W^-1)^T (W^-1) with W^-1 = P R^-1 P upper triangular with a positive
//      diagonal: by uniqueness of the Cholesky factorization it is exactly the
//      U of the interface (the CPU's potrf(potri(potrf(H)))). R^-1 is trtri.
// The memory layout, column-major for cuSOLVER: the fp64 buffer a holds
//   a[k] = H[n*n - 1 - k]   (the row-major buffer of H reversed),
// which read column-major is A(i, j) = a[i + j n] = H[(n-1-j) n + (n-1-i)] =
// H(n-1-j, n-1-i) = H(n-1-i, n-1-j) by symmetry = (P H P)(i, j). potrf and
// trtri with uplo LOWER then leave R^-1 in the column-major lower triangle
// (and never read the upper one), and
//   U(r, c) = R^-1(n-1-r, n-1-c) = a[(n-1-r) + (n-1-c) n] = a[n*n - 1 - (c n + r)],
// in the lower triangle exactly when n-1-r >= n-1-c, i.e. c >= r.
#include <algorithm>
#include <vector>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_launch.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace gptqd::cuda {
namespace {

constexpr int kTile = 32;
constexpr int kTileRows = 8;

__global__ void reverse_to_f64_kernel(int64_t nn, const float* h, double* a) {
  for (int64_t k = grid_start(); k < nn; k += grid_stride()) a[k] = h[nn - 1 - k];
}

// h[r, c] = U(r, c) = B(c, r) with B(x, y) = a[n*n - 1 - (x n + y)]: a tiled
// transpose of the reversed buffer, coalesced on both sides. Every element of h
// is written: the strictly lower triangle with zeros.
__global__ void upper_from_reversed_kernel(int64_t n, const double* a, float* h) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t tile_r = blockIdx.y, tile_c = blockIdx.x;
  const int64_t nn = n * n;
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int64_t x = tile_c * kTile + k, y = tile_r * kTile + threadIdx.x;
    if (x < n && y < n) tile[k][threadIdx.x] = static_cast<float>(a[nn - 1 - (x * n + y)]);
  }
  __syncthreads();
  for (int k = threadIdx.y; k < kTile; k += kTileRows) {
    const int64_t r = tile_r * kTile + k, c = tile_c * kTile + threadIdx.x;
    // B(c, r) is tile element [c - tile_c*kTile][r - tile_r*kTile].
    if (r < n && c < n) h[r * n + c] = c >= r ? tile[threadIdx.x][k] : 0.0f;
  }
}

}  // namespace

void launch_reverse_to_f64(int64_t n, const float* h, double* a, cudaStream_t stream) {
  if (n <= 0) return;
  reverse_to_f64_kernel<<<grid_for(n * n), kThreads, 0, stream>>>(n * n, h, a);
  GPTQD_CUDA_LAUNCH_CHECK(reverse_to_f64_kernel);
}

void launch_upper_from_reversed(int64_t n, const double* a, float* h, cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t tiles = (n + kTile - 1) / kTile;
  GPTQD_CHECK(tiles <= 65535, "factor of a {}x{} matrix exceeds the grid", n, n);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(tiles));
  upper_from_reversed_kernel<<<grid, dim3(kTile, kTileRows), 0, stream>>>(n, a, h);
  GPTQD_CUDA_LAUNCH_CHECK(upper_from_reversed_kernel);
}

bool CudaBackend::inverse_cholesky_upper(int64_t n, float* h) {
  if (n <= 0) return true;
  activate();
  cusolverDnHandle_t solver = cusolver_.get();
  DeviceArray<double> a(n * n, stream());
  DeviceArray<int> info(1, stream());
  launch_reverse_to_f64(n, h, a.get(), stream());

  size_t potrf_dev = 0, potrf_host = 0, trtri_dev = 0, trtri_host = 0;
  GPTQD_CUSOLVER_CHECK(cusolverDnXpotrf_bufferSize(solver, cusolver_.params(),
                                                   CUBLAS_FILL_MODE_LOWER, n, CUDA_R_64F, a.get(),
                                                   n, CUDA_R_64F, &potrf_dev, &potrf_host));
  GPTQD_CUSOLVER_CHECK(cusolverDnXtrtri_bufferSize(solver, CUBLAS_FILL_MODE_LOWER,
                                                   CUBLAS_DIAG_NON_UNIT, n, CUDA_R_64F, a.get(), n,
                                                   &trtri_dev, &trtri_host));
  const size_t dev_bytes = std::max(potrf_dev, trtri_dev);
  DeviceArray<unsigned char> work(static_cast<int64_t>(dev_bytes), stream());
  // The host workspace must stay alive until the calls complete: the info
  // reads below synchronize the stream before it goes out of scope.
  std::vector<unsigned char> host_work(std::max(potrf_host, trtri_host));

  // info > 0 from potrf: the leading minor of that order is not positive
  // definite (nor is H's, since P H P is a symmetric permutation of H).
  auto info_value = [&]() {
    int value = 0;
    download(&value, info.get(), sizeof value);
    return value;
  };
  GPTQD_CUSOLVER_CHECK(cusolverDnXpotrf(solver, cusolver_.params(), CUBLAS_FILL_MODE_LOWER, n,
                                        CUDA_R_64F, a.get(), n, CUDA_R_64F, work.get(), dev_bytes,
                                        host_work.data(), potrf_host, info.get()));
  const int potrf_info = info_value();
  GPTQD_CHECK(potrf_info >= 0, "cusolverDnXpotrf: invalid argument {}", -potrf_info);
  if (potrf_info > 0) return false;

  // info > 0 from trtri: an exactly zero diagonal element of R (underflow).
  GPTQD_CUSOLVER_CHECK(cusolverDnXtrtri(solver, CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, n,
                                        CUDA_R_64F, a.get(), n, work.get(), dev_bytes,
                                        host_work.data(), trtri_host, info.get()));
  const int trtri_info = info_value();
  GPTQD_CHECK(trtri_info >= 0, "cusolverDnXtrtri: invalid argument {}", -trtri_info);
  if (trtri_info > 0) return false;

  launch_upper_from_reversed(n, a.get(), h, stream());
  return true;
}

}  // namespace gptqd::cuda
