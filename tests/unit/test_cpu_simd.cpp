// The BLAS-kernel warning (kernels/cpu/cpu_simd.h): OpenBLAS's kernel names map to the vectors
// they use, the warning appears exactly when the kernels are narrower than the CPU, and it says
// why (environment or an unrecognised CPU) and what to set.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "kernels/cpu/blas_kernel_choice.h"
#include "kernels/cpu/cpu_blas.h"
#include "kernels/cpu/cpu_simd.h"

namespace gptqd::cpu {
namespace {

TEST(CpuSimd, KernelNamesMapToTheirVectors) {
  EXPECT_EQ(kernel_simd("Prescott"), Simd::kSse);
  EXPECT_EQ(kernel_simd("Nehalem"), Simd::kSse);
  EXPECT_EQ(kernel_simd("Sandybridge"), Simd::kAvx);
  EXPECT_EQ(kernel_simd("Haswell"), Simd::kAvx2);
  EXPECT_EQ(kernel_simd("Zen"), Simd::kAvx2);
  EXPECT_EQ(kernel_simd("SkylakeX"), Simd::kAvx512);
  EXPECT_EQ(kernel_simd("COOPERLAKE"), Simd::kAvx512);
  EXPECT_EQ(kernel_simd("SapphireRapids"), Simd::kAvx512);
  EXPECT_EQ(kernel_simd("Neoverse"), Simd::kUnknown);
  EXPECT_EQ(kernel_simd(""), Simd::kUnknown);
}

// The library this binary runs reports a name the table knows (on x86-64), so the check is live
// here and not silently skipped; and this CPU's level is known.
TEST(CpuSimd, TheLinkedLibrarysKernelsAreKnown) {
#if defined(__x86_64__)
  EXPECT_NE(kernel_simd(blas_corename()), Simd::kUnknown) << blas_corename();
  EXPECT_NE(cpu_simd(), Simd::kUnknown);
  EXPECT_EQ(blas_version().rfind("OpenBLAS ", 0), 0u) << blas_version();
#else
  GTEST_SKIP() << "x86-64 only";
#endif
}

TEST(CpuSimd, WarnsOnlyWhenTheKernelsAreNarrower) {
  EXPECT_EQ(blas_kernel_warning("SkylakeX", Simd::kAvx512, nullptr, "OpenBLAS 0.3.21"), "");
  EXPECT_EQ(blas_kernel_warning("Cooperlake", Simd::kAvx512, "", "OpenBLAS 0.3.21"), "");
  EXPECT_EQ(blas_kernel_warning("Haswell", Simd::kAvx2, nullptr, "OpenBLAS 0.3.21"), "");
  // Wider kernels than the CPU cannot be loaded by OpenBLAS; nothing to advise.
  EXPECT_EQ(blas_kernel_warning("SkylakeX", Simd::kAvx2, nullptr, "OpenBLAS 0.3.21"), "");
  EXPECT_EQ(blas_kernel_warning("Neoverse", Simd::kAvx512, nullptr, "OpenBLAS 0.3.21"), "");
  EXPECT_EQ(blas_kernel_warning("Prescott", Simd::kUnknown, nullptr, "OpenBLAS 0.3.21"), "");

  const std::string unrecognised =
      blas_kernel_warning("Prescott", Simd::kAvx512, nullptr, "OpenBLAS 0.3.21");
  EXPECT_NE(unrecognised.find("the BLAS runs Prescott kernels (SSE) on a CPU with AVX-512"),
            std::string::npos)
      << unrecognised;
  EXPECT_NE(unrecognised.find("OpenBLAS 0.3.21 does not recognise this CPU"), std::string::npos)
      << unrecognised;
  EXPECT_NE(unrecognised.find("OPENBLAS_CORETYPE=SkylakeX"), std::string::npos) << unrecognised;

  const std::string from_env =
      blas_kernel_warning("Haswell", Simd::kAvx512, "Haswell", "OpenBLAS 0.3.21");
  EXPECT_NE(from_env.find("Haswell kernels (AVX2) on a CPU with AVX-512"), std::string::npos)
      << from_env;
  EXPECT_NE(from_env.find("OPENBLAS_CORETYPE=Haswell in the environment asks for them"),
            std::string::npos)
      << from_env;
  EXPECT_EQ(from_env.find("does not recognise"), std::string::npos) << from_env;

  const std::string avx2 = blas_kernel_warning("Sandybridge", Simd::kAvx2, "", "OpenBLAS 0.3.26");
  EXPECT_NE(avx2.find("OPENBLAS_CORETYPE=Haswell selects AVX2 kernels"), std::string::npos) << avx2;
}

// The start-up choice (kernels/cpu/blas_kernel_choice.h): the CPU's widest family where the
// library's pick is narrower and the environment says nothing; never over a set environment.
TEST(CpuSimd, ChoosesTheWidestKernelsOnlyWhenTheLibrarysAreNarrower) {
  EXPECT_EQ(blas_kernel_choice("Prescott", Simd::kAvx512, nullptr), "SkylakeX");
  EXPECT_EQ(blas_kernel_choice("Prescott", Simd::kAvx512, ""), "SkylakeX");
  EXPECT_EQ(blas_kernel_choice("Haswell", Simd::kAvx512, nullptr), "SkylakeX");
  EXPECT_EQ(blas_kernel_choice("Sandybridge", Simd::kAvx2, nullptr), "Haswell");
  EXPECT_EQ(blas_kernel_choice("Nehalem", Simd::kAvx, nullptr), "Sandybridge");
  EXPECT_EQ(blas_kernel_choice("Prescott", Simd::kAvx512, "Prescott"), "");
  EXPECT_EQ(blas_kernel_choice("Haswell", Simd::kAvx512, "Haswell"), "");
  EXPECT_EQ(blas_kernel_choice("SkylakeX", Simd::kAvx512, nullptr), "");
  EXPECT_EQ(blas_kernel_choice("Cooperlake", Simd::kAvx512, nullptr), "");
  EXPECT_EQ(blas_kernel_choice("Zen", Simd::kAvx2, nullptr), "");
  EXPECT_EQ(blas_kernel_choice("Prescott", Simd::kSse, nullptr), "");
  EXPECT_EQ(blas_kernel_choice("Neoverse", Simd::kAvx512, nullptr), "");
  EXPECT_EQ(blas_kernel_choice("Prescott", Simd::kUnknown, nullptr), "");
  // Every name chosen is one the kernel table (OpenBLAS's list) knows, at the CPU's level.
  for (Simd s : {Simd::kAvx, Simd::kAvx2, Simd::kAvx512})
    EXPECT_EQ(kernel_simd(blas_kernel_choice("Prescott", s, nullptr)), s) << simd_name(s);
}

// This test binary's main made the choice (tests/test_main.cpp): unless the environment set
// OPENBLAS_CORETYPE, the kernels running now are not narrower than the CPU's vectors, on any
// x86-64 CPU this OpenBLAS knows the vectors of. On this project's development machine
// (OpenBLAS 0.3.21 does not recognise its Xeon) the library alone runs Prescott, and the
// test fails without the choice.
TEST(CpuSimd, TheRunningKernelsAreTheCpusWidest) {
  // Set by the choice itself (then the note says so) or by the user (then theirs holds).
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  const bool chosen = !blas_kernel_choice_note().empty();
  if (env != nullptr && env[0] != '\0' && !chosen)
    GTEST_SKIP() << "OPENBLAS_CORETYPE=" << env << " is set";
  const Simd kernels = kernel_simd(blas_corename());
  if (kernels == Simd::kUnknown || cpu_simd() == Simd::kUnknown)
    GTEST_SKIP() << "kernels " << blas_corename() << " not in the table";
  const Simd widest = cpu_simd() > Simd::kAvx512 ? Simd::kAvx512 : cpu_simd();
  EXPECT_GE(kernels, widest) << blas_corename() << " on a CPU with " << simd_name(cpu_simd());
  EXPECT_EQ(blas_kernel_warning(blas_corename(), cpu_simd(), env, blas_version()), "");
  if (chosen) {
    EXPECT_NE(blas_kernel_choice_note().find("chosen by gptqd at start-up"), std::string::npos)
        << blas_kernel_choice_note();
  }
}

}  // namespace
}  // namespace gptqd::cpu
