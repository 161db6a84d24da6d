#include "kernels/cpu/blas_kernel_choice.h"

#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/cpu_blas.h"

namespace gptqd::cpu {
namespace {

constexpr const char* kReplacedVar = "GPTQD_BLAS_KERNELS_REPLACED";

// The kernels the library had picked before the re-execution; read once and removed from the
// environment, so that a program this one starts decides for itself.
std::string& replaced_kernels() {
  static std::string replaced;
  return replaced;
}

}  // namespace

std::string blas_kernel_choice(const std::string& corename, Simd cpu, const char* coretype_env) {
  if (coretype_env != nullptr && coretype_env[0] != '\0') return {};
  const Simd kernels = kernel_simd(corename);
  if (kernels == Simd::kUnknown || cpu == Simd::kUnknown || kernels >= cpu) return {};
  // Names every OpenBLAS since 0.3.10 knows. SkylakeX also on CPUs with AVX512-BF16: Cooperlake
  // (0.3.21 has no SapphireRapids) runs the same SGEMM, at the same speed and bits, and adds
  // bf16 kernels that Debian's build leaves out (it exports no cblas_sbgemm), while its STRTRI
  // gives other last bits (docs/performance.md, "bf16 on the CPU").
  switch (cpu) {
    case Simd::kAvx512:
      return "SkylakeX";
    case Simd::kAvx2:
      return "Haswell";
    case Simd::kAvx:
      return "Sandybridge";
    default:
      return {};
  }
}

void choose_blas_kernels(char** argv) {
  if (const char* replaced = std::getenv(kReplacedVar)) {
    replaced_kernels() = replaced;
    unsetenv(kReplacedVar);
    return;  // the re-executed program: OPENBLAS_CORETYPE is set now, whatever it loaded
  }
  const std::string corename = blas_corename();
  const std::string choice =
      blas_kernel_choice(corename, cpu_simd(), std::getenv("OPENBLAS_CORETYPE"));
  if (choice.empty()) return;
  // The program's own path, not /proc/self/exe: the kernel names the process after the file
  // executed, and ps, pgrep and top should still say gptqd.
  char self[PATH_MAX];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len <= 0) {
    std::fprintf(stderr, "gptqd: cannot read /proc/self/exe (%s); keeping the %s kernels\n",
                 std::strerror(errno), corename.c_str());
    return;
  }
  self[len] = '\0';
  setenv("OPENBLAS_CORETYPE", choice.c_str(), 1);
  setenv(kReplacedVar, corename.c_str(), 1);
  execv(self, argv);
  // Only on failure: go on with the library's pick (the job's log then warns about it).
  const int err = errno;
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(kReplacedVar);
  std::fprintf(stderr, "gptqd: could not restart with OPENBLAS_CORETYPE=%s (%s); keeping %s\n",
               choice.c_str(), std::strerror(err), corename.c_str());
}

std::string blas_kernel_choice_note() {
  if (replaced_kernels().empty()) return {};
  const std::string now = blas_corename();
  return fmt::format(
      "BLAS kernels: {} ({}), chosen by gptqd at start-up; {} picked {} ({}) on this CPU. "
      "OPENBLAS_CORETYPE overrides the choice",
      now, simd_name(kernel_simd(now)), blas_version(), replaced_kernels(),
      simd_name(kernel_simd(replaced_kernels())));
}

}  // namespace gptqd::cpu
