// Which vector instructions the CPU has and which the BLAS's kernels use. OpenBLAS picks its
// kernels from the CPU it recognises or from OPENBLAS_CORETYPE; a CPU newer than the library
// (OpenBLAS 0.3.21 and some Xeons) or a stale environment setting leaves it on narrower kernels
// than the CPU runs, at a fraction of the speed (docs/performance.md, "BLAS kernels"). The
// CPU backend says so in the job's log instead of running slower without a word.
#pragma once

#include <string>

namespace gptqd::cpu {

// Ordered from narrowest to widest; kUnknown compares as nothing.
enum class Simd { kUnknown = -1, kSse = 0, kAvx = 1, kAvx2 = 2, kAvx512 = 3 };

const char* simd_name(Simd s);

// The widest vector set this CPU and its OS run (cpuid and xgetbv, via the compiler's
// __builtin_cpu_supports).
Simd cpu_simd();

// The vector set of an OpenBLAS x86-64 kernel family by its openblas_get_corename() name
// ("Prescott", "Haswell", "SkylakeX", "Cooperlake", ...), any case; kUnknown for a name not in
// OpenBLAS's list.
Simd kernel_simd(const std::string& corename);

// One sentence when the kernels are narrower than the CPU: which run, what the CPU has, why
// (the environment's OPENBLAS_CORETYPE, or a library that does not know the CPU) and the
// setting that selects the widest; empty when they match or either side is unknown.
// `coretype_env`: OPENBLAS_CORETYPE's value, nullptr or "" when unset.
std::string blas_kernel_warning(const std::string& corename, Simd cpu, const char* coretype_env,
                                const std::string& library);

}  // namespace gptqd::cpu
