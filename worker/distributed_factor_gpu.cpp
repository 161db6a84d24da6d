#include "worker/distributed_factor_gpu.h"

#include <cuda_runtime.h>
#include <cusolverMp.h>
#include <dlfcn.h>
#include <nccl.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/check.h"
#include "base/timing.h"
#include "worker/transport/nccl_util.h"

namespace gptqd {
namespace {

void check_nccl(ncclResult_t rc, const char* call) {
  GPTQD_CHECK(rc == ncclSuccess, "{} failed: {}", call, ncclGetErrorString(rc));
}

void check_cusolvermp(cusolverStatus_t st, const char* call) {
  GPTQD_CHECK(st == CUSOLVER_STATUS_SUCCESS, "{} failed: cusolverStatus_t {}", call,
              static_cast<int>(st));
}

#define GPTQD_MP_CALL(check, call) check((call), #call)

// Device memory of `bytes`, freed on scope exit.
class DeviceBytes {
 public:
  explicit DeviceBytes(size_t bytes) {
    GPTQD_MP_CALL(cuda_check, cudaMalloc(&p_, std::max<size_t>(bytes, 1)));
  }
  ~DeviceBytes() { cudaFree(p_); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
};

// cuSOLVERMp's functions, loaded at run time: libcusolverMp.so.0 needs the NVIDIA driver's
// libcuda.so.1, so linking it would keep gptqd from starting on a machine without a GPU (CPU
// jobs, CI). The types come from its header, so every call is checked at compile time; the
// library's exports are checked at link time by the cusolvermp_symbols target
// (worker/cusolvermp_symbols.cpp).
struct CusolverMpApi {
  decltype(&cusolverMpCreate) create;
  decltype(&cusolverMpDestroy) destroy;
  decltype(&cusolverMpCreateDeviceGrid) create_grid;
  decltype(&cusolverMpDestroyGrid) destroy_grid;
  decltype(&cusolverMpCreateMatrixDesc) create_desc;
  decltype(&cusolverMpDestroyMatrixDesc) destroy_desc;
  decltype(&cusolverMpPotrf_bufferSize) potrf_size;
  decltype(&cusolverMpPotrf) potrf;
  decltype(&cusolverMpPotrs_bufferSize) potrs_size;
  decltype(&cusolverMpPotrs) potrs;
};

template <typename F>
void load_symbol(void* lib, const char* name, F* f) {
  *f = reinterpret_cast<F>(dlsym(lib, name));
  GPTQD_CHECK(*f != nullptr, "libcusolverMp has no {}: {}", name, dlerror());
}

// Loaded once: $GPTQD_CUSOLVERMP_LIB, else the library this gptqd was built against
// (GPTQD_CUSOLVERMP_PATH), else libcusolverMp.so.0 from the loader's search path.
const CusolverMpApi& api() {
  static const CusolverMpApi loaded = [] {
    std::vector<std::string> tries;
    if (const char* env = std::getenv("GPTQD_CUSOLVERMP_LIB")) tries.push_back(env);
    tries.push_back(GPTQD_CUSOLVERMP_PATH);
    tries.push_back("libcusolverMp.so.0");
    void* lib = nullptr;
    std::string why;
    for (const std::string& path : tries) {
      lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (lib) break;
      why += (why.empty() ? "" : "; ") + std::string(dlerror());
    }
    GPTQD_CHECK(lib != nullptr, "cannot load cuSOLVERMp ({}); set GPTQD_CUSOLVERMP_LIB", why);
    CusolverMpApi a{};
    load_symbol(lib, "cusolverMpCreate", &a.create);
    load_symbol(lib, "cusolverMpDestroy", &a.destroy);
    load_symbol(lib, "cusolverMpCreateDeviceGrid", &a.create_grid);
    load_symbol(lib, "cusolverMpDestroyGrid", &a.destroy_grid);
    load_symbol(lib, "cusolverMpCreateMatrixDesc", &a.create_desc);
    load_symbol(lib, "cusolverMpDestroyMatrixDesc", &a.destroy_desc);
    load_symbol(lib, "cusolverMpPotrf_bufferSize", &a.potrf_size);
    load_symbol(lib, "cusolverMpPotrf", &a.potrf);
    load_symbol(lib, "cusolverMpPotrs_bufferSize", &a.potrs_size);
    load_symbol(lib, "cusolverMpPotrs", &a.potrs);
    return a;  // the library stays loaded for the process
  }();
  return loaded;
}

// Waits for the stream when it goes out of scope, an exception included, so the host
// workspaces declared before it outlive the library calls queued on them.
struct StreamDrain {
  cudaStream_t stream;
  ~StreamDrain() { cudaStreamSynchronize(stream); }
};

// A square n x n float64 block-cyclic descriptor on the grid, destroyed with its owner.
class MatrixDesc {
 public:
  MatrixDesc(cusolverMpGrid_t grid, int64_t n, int64_t nb, int64_t lld) {
    GPTQD_MP_CALL(check_cusolvermp,
                  api().create_desc(&desc_, grid, CUDA_R_64F, n, n, nb, nb, 0, 0, lld));
  }
  ~MatrixDesc() {
    if (desc_) api().destroy_desc(desc_);
  }
  MatrixDesc(const MatrixDesc&) = delete;
  MatrixDesc& operator=(const MatrixDesc&) = delete;
  cusolverMpMatrixDescriptor_t get() const { return desc_; }

 private:
  cusolverMpMatrixDescriptor_t desc_ = nullptr;
};

// How far L(i,i) X(i,i) may be from 1: the float64 solves leave about cond(L) * 2^-53 (1e-12
// at the cond(H) ~ 1e8 of damped real Hessians); a solve that dropped or mixed right-hand
// sides misses by O(1).
constexpr double kDiagonalCheck = 1e-4;

}  // namespace

bool cusolvermp_built() { return true; }

bool cusolvermp_loadable(std::string* why) {
  try {
    api();
    return true;
  } catch (const Error& e) {
    if (why) *why = e.what();
    return false;
  }
}

struct CusolverMpFactorizer::Impl {
  MPI_Comm comm;
  int device;
  int block;
  BlockCyclicGrid grid;
  ncclComm_t nccl = nullptr;
  cudaStream_t stream = nullptr;
  cusolverMpHandle_t solver = nullptr;
  cusolverMpGrid_t solver_grid = nullptr;
  FactorSeconds seconds;

  ~Impl() {
    if (stream) cudaStreamSynchronize(stream);
    if (solver_grid) api().destroy_grid(solver_grid);
    if (solver) api().destroy(solver);
    if (nccl) ncclCommDestroy(nccl);
    if (stream) cudaStreamDestroy(stream);
  }
};

CusolverMpFactorizer::CusolverMpFactorizer(MPI_Comm comm, int device, int block)
    : impl_(std::make_unique<Impl>()) {
  GPTQD_CHECK(block >= 1, "cuSOLVERMp block size {}", block);
  GPTQD_CHECK(device >= 0, "cuSOLVERMp needs a CUDA device, got {}", device);
  api();  // a library that cannot be loaded fails here, before any collective
  Impl& m = *impl_;
  m.comm = comm;
  m.device = device;
  m.block = block;
  int size = 1, rank = 0;
  MPI_Comm_size(comm, &size);
  MPI_Comm_rank(comm, &rank);
  // Column-major mapping (cuSOLVERMp's samples): rank p at (p % rows, p / rows); the gather
  // learns every coordinate from the processes themselves.
  m.grid = square_grid(size);
  m.grid.row = rank % m.grid.rows;
  m.grid.col = rank / m.grid.rows;

  GPTQD_MP_CALL(cuda_check, cudaSetDevice(device));
  GPTQD_MP_CALL(cuda_check, cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));
  GPTQD_MP_CALL(check_nccl, ncclCommInitRank(&m.nccl, size, nccl_unique_id(comm), rank));
  GPTQD_MP_CALL(check_cusolvermp, api().create(&m.solver, device, m.stream));
  GPTQD_MP_CALL(check_cusolvermp,
                api().create_grid(m.solver, &m.solver_grid, m.nccl, m.grid.rows, m.grid.cols,
                                  CUSOLVERMP_GRID_MAPPING_COL_MAJOR));
}

CusolverMpFactorizer::~CusolverMpFactorizer() = default;

int CusolverMpFactorizer::grid_rows() const { return impl_->grid.rows; }
int CusolverMpFactorizer::grid_cols() const { return impl_->grid.cols; }
int CusolverMpFactorizer::block() const { return impl_->block; }
const FactorSeconds& CusolverMpFactorizer::last_seconds() const { return impl_->seconds; }

bool CusolverMpFactorizer::inverse_cholesky_upper(int64_t n, float* h) {
  Impl& m = *impl_;
  m.seconds = FactorSeconds{};
  if (n <= 0) return true;
  GPTQD_MP_CALL(cuda_check, cudaSetDevice(m.device));
  // Memory the CUDA backend freed stays in its stream-ordered pool (release threshold max);
  // give it back so the plain allocations below can have it.
  cudaMemPool_t pool = nullptr;
  GPTQD_MP_CALL(cuda_check, cudaDeviceGetDefaultMemPool(&pool, m.device));
  GPTQD_MP_CALL(cuda_check, cudaMemPoolTrimTo(pool, 0));
  const int64_t nb = block_cyclic_block(n, m.block, m.grid);
  const int64_t mloc = block_cyclic_count(n, nb, m.grid.row, m.grid.rows);
  const int64_t nloc = block_cyclic_count(n, nb, m.grid.col, m.grid.cols);
  const int64_t lld = std::max<int64_t>(1, mloc);
  const size_t local = static_cast<size_t>(std::max<int64_t>(mloc * nloc, 1));
  const size_t bytes = local * sizeof(double);
  auto sync = [&] { GPTQD_MP_CALL(cuda_check, cudaStreamSynchronize(m.stream)); };
  auto to_device = [&](void* dst, const void* src) {
    GPTQD_MP_CALL(cuda_check, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, m.stream));
  };
  auto to_host = [&](void* dst, const void* src) {
    GPTQD_MP_CALL(cuda_check, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, m.stream));
  };
  // Every local element (li, lj) of the part with its global row i and column j.
  auto for_each_local = [&](auto&& fn) {
    for (int64_t lj = 0; lj < nloc; ++lj) {
      const int64_t j = block_cyclic_global(lj, nb, m.grid.col, m.grid.cols);
      for (int64_t li = 0; li < mloc; ++li)
        fn(lj * lld + li, block_cyclic_global(li, nb, m.grid.row, m.grid.rows), j);
    }
  };

  // 1. This process's part of A = J H J in float64, on the device.
  auto t0 = SteadyClock::now();
  DeviceBytes a(bytes), info(sizeof(int));
  std::vector<double> part = reversed_local_part(h, n, nb, m.grid);  // reused below
  to_device(a.get(), part.data());
  sync();
  m.seconds.scatter = seconds_since(t0);

  // 2. A = L L^T in float64 (the lower triangle; L = R^T of the ScaLAPACK path's A = R^T R).
  //    Every process learns the outcome.
  t0 = SteadyClock::now();
  const MatrixDesc desc_a(m.solver_grid, n, nb, lld), desc_x(m.solver_grid, n, nb, lld);
  int failed = 0;
  {
    size_t dev_bytes = 0, host_bytes = 0;
    GPTQD_MP_CALL(check_cusolvermp,
                  api().potrf_size(m.solver, CUBLAS_FILL_MODE_LOWER, n, a.get(), 1, 1, desc_a.get(),
                                   CUDA_R_64F, &dev_bytes, &host_bytes));
    DeviceBytes work(dev_bytes);
    std::vector<unsigned char> host_work(host_bytes);
    const StreamDrain drain{m.stream};  // host_work outlives the queued call, even on a throw
    GPTQD_MP_CALL(cuda_check, cudaMemsetAsync(info.get(), 0, sizeof(int), m.stream));
    GPTQD_MP_CALL(check_cusolvermp,
                  api().potrf(m.solver, CUBLAS_FILL_MODE_LOWER, n, a.get(), 1, 1, desc_a.get(),
                              CUDA_R_64F, work.get(), dev_bytes, host_work.data(), host_bytes,
                              static_cast<int*>(info.get())));
    GPTQD_MP_CALL(cuda_check, cudaMemcpyAsync(&failed, info.get(), sizeof(int),
                                              cudaMemcpyDeviceToHost, m.stream));
    sync();
  }
  GPTQD_CHECK(failed >= 0, "cusolverMpPotrf: argument {} is invalid", -failed);
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, m.comm);
  m.seconds.potrf = seconds_since(t0);
  if (failed != 0) return false;

  // 3. R^-1 = L^-T in float64. cuSOLVERMp has no triangular inverse (and cuBLASMp's trsm needs
  //    a newer NCCL: scripts/get-cusolvermp.sh), so potrs does it: A X = B with B = L gives
  //    X = L^-T L^-1 L = L^-T. B is L's part with its upper triangle zeroed (the same
  //    block-cyclic layout), through the host; L's diagonal is kept to check X's.
  t0 = SteadyClock::now();
  DeviceBytes x(bytes);
  to_host(part.data(), a.get());
  sync();
  std::vector<double> l_diag;  // L(i, i) * X(i, i) must be 1 for this process's diagonal
  for_each_local([&](int64_t k, int64_t i, int64_t j) {
    if (i < j) part[k] = 0.0;
    if (i == j) l_diag.push_back(part[k]);
  });
  to_device(x.get(), part.data());
  int solve_info = 0;
  {
    size_t dev_bytes = 0, host_bytes = 0;
    GPTQD_MP_CALL(
        check_cusolvermp,
        api().potrs_size(m.solver, CUBLAS_FILL_MODE_LOWER, n, n, a.get(), 1, 1, desc_a.get(),
                         x.get(), 1, 1, desc_x.get(), CUDA_R_64F, &dev_bytes, &host_bytes));
    DeviceBytes work(dev_bytes);
    std::vector<unsigned char> host_work(host_bytes);
    const StreamDrain drain{m.stream};
    GPTQD_MP_CALL(cuda_check, cudaMemsetAsync(info.get(), 0, sizeof(int), m.stream));
    GPTQD_MP_CALL(check_cusolvermp,
                  api().potrs(m.solver, CUBLAS_FILL_MODE_LOWER, n, n, a.get(), 1, 1, desc_a.get(),
                              x.get(), 1, 1, desc_x.get(), CUDA_R_64F, work.get(), dev_bytes,
                              host_work.data(), host_bytes, static_cast<int*>(info.get())));
    GPTQD_MP_CALL(cuda_check, cudaMemcpyAsync(&solve_info, info.get(), sizeof(int),
                                              cudaMemcpyDeviceToHost, m.stream));
    to_host(part.data(), x.get());
    sync();
  }
  GPTQD_CHECK(solve_info == 0, "cusolverMpPotrs: info {}", solve_info);
  // A solve that did not take all n right-hand sides (or took them wrongly) cannot pass this:
  // X's diagonal is exactly 1 / L's in exact arithmetic.
  double worst = 0;
  size_t d = 0;
  for_each_local([&](int64_t k, int64_t i, int64_t j) {
    if (i == j) worst = std::max(worst, std::fabs(l_diag[d++] * part[k] - 1.0));
  });
  MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_DOUBLE, MPI_MAX, m.comm);
  GPTQD_CHECK(worst <= kDiagonalCheck,
              "cusolverMpPotrs gave a wrong inverse factor (L(i,i) X(i,i) off 1 by {:.3g} at order "
              "{}); use parallel.factorization: replicated",
              worst, n);
  m.seconds.trtri = seconds_since(t0);

  // 4. Rounded to float32 (as the CUDA backend rounds its float64 R^-1), then every
  //    process's part to every process, U assembled on each.
  t0 = SteadyClock::now();
  std::vector<float> r(part.begin(), part.end());
  part = std::vector<double>();
  gather_reversed_upper(m.comm, m.grid, n, nb, r, h);
  m.seconds.gather = seconds_since(t0);
  return true;
}

}  // namespace gptqd
