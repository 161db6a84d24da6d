// The BLAS kernels chosen at start-up. OpenBLAS picks its kernels once, when the library is
// loaded (before main), from the CPU it recognises or from OPENBLAS_CORETYPE. A CPU newer than
// the library (OpenBLAS 0.3.21 and some AVX-512 Xeons) leaves it on its SSE kernels, at a
// third of the GEMM speed (docs/performance.md, "BLAS kernels"). Every gptqd binary that
// computes (gptqd, the test and bench mains) calls choose_blas_kernels first: where
// OPENBLAS_CORETYPE is unset and the library's kernels are narrower than the CPU's widest
// vectors, it sets OPENBLAS_CORETYPE to the kernel family of those vectors and re-executes the
// program (same pid, arguments and environment otherwise), so the library loads again with
// them. The choice depends on the CPU alone, so a job and its resume on one machine run the
// same kernels. A user who sets OPENBLAS_CORETYPE keeps exactly what they set.
#pragma once

#include <string>

#include "kernels/cpu/cpu_simd.h"

namespace gptqd::cpu {

// The OPENBLAS_CORETYPE value for the CPU's widest vectors when the library's kernels
// (`corename`) are narrower and the environment does not set it (`coretype_env` nullptr or
// ""); empty otherwise (already the widest, unknown names, a set environment).
std::string blas_kernel_choice(const std::string& corename, Simd cpu, const char* coretype_env);

// Re-executes this program (the file /proc/self/exe links to) with OPENBLAS_CORETYPE set when blas_kernel_choice says so; the
// kernels the library had picked are kept in GPTQD_BLAS_KERNELS_REPLACED for the log. Returns
// when nothing is to change, or (with a line on stderr) when the re-execution fails. Call it
// first in main, before MPI_Init and before any thread starts.
void choose_blas_kernels(char** argv);

// One sentence for the job's log when choose_blas_kernels replaced the library's pick ("BLAS
// kernels: SkylakeX (AVX-512), chosen by gptqd at start-up; OpenBLAS 0.3.21 picked Prescott
// (SSE) on this CPU. OPENBLAS_CORETYPE overrides the choice"), empty otherwise.
std::string blas_kernel_choice_note();

}  // namespace gptqd::cpu
