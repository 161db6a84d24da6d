// The rates `gptqd plan` assumes by default, one named constant each with where it comes from.
// bench/gpu_gptq prints the rate it measures beside each, so the first GPU run calibrates them
// (docs/plan-bloom-176b.md, "Rates").
#pragma once

namespace gptqd::plan_rates {

// Sustained fp32 (TF32 off) TFLOP/s of one GPU for the fp32 phases: the GPTQ sweep, the error
// statistics, and (exact precision) the forward GEMMs and the Hessian. NVIDIA's H100 SXM
// datasheet gives 67 TFLOPS fp32 peak (A100: 19.5); 50 is ~75% of the H100's peak, what large
// cuBLAS SGEMMs sustain.
inline constexpr double kFp32Tflops = 50;

// Sustained bf16 tensor-core TFLOP/s with fp32 accumulation: the forward GEMMs and the Hessian
// X^T X under parallel.precision: fast (cublasGemmEx, CUDA_R_16BF, CUBLAS_COMPUTE_32F). The
// H100 SXM datasheet gives 989 TFLOPS dense bf16 (the 1979 figure is with 2:4 sparsity; H200:
// the same compute); 600 is ~60% of it, what cuBLAS reaches on GEMMs of these shapes
// (k >= 4096) in NVIDIA's published cuBLAS benchmarks for Hopper.
inline constexpr double kBf16Tflops = 600;

// Sustained TFLOP/s of the Hessian factorization (Cholesky, inverse, Cholesky of the inverse;
// cuSOLVER in fp64 with fp64 tensor cores). The H100 SXM datasheet gives 67 TFLOPS fp64 tensor
// core peak; cuSOLVER's dpotrf reaches ~60-70% of it on n >= 16384: 40.
inline constexpr double kFactorTflops = 40;

// How much slower the reference ScaLAPACK (Debian's 2.2.1, the CPU backend's distributed
// factorization) runs the same flops than OpenBLAS's LAPACK (the CPU backend's replicated one):
// 2.06 against 1.29 CPU s at n = 4096 on a 1 x 1 grid, no communication
// (docs/distributed-factorization.md, "Speed"). A vendor ScaLAPACK would lower it.
inline constexpr double kScalapackSlowdown = 1.6;

// Collectives inside a node (NVLink 4 gives 450 GB/s per direction per GPU; NCCL's all-reduce
// bus bandwidth measured by nccl-tests on 8 x H100 is ~350-450 GB/s; 150 is a conservative
// algorithm bandwidth), across nodes (one 200-400 Gb/s InfiniBand NDR port per GPU: 25 GB/s),
// and reading weights from a node's file system (2 GB/s: a local NVMe or a share of a
// parallel file system).
inline constexpr double kLinkGbs = 150;
inline constexpr double kNetGbs = 25;
inline constexpr double kDiskGbs = 2;

}  // namespace gptqd::plan_rates
