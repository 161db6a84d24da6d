#include "kernels/cpu/cpu_simd.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cctype>

namespace gptqd::cpu {

const char* simd_name(Simd s) {
  switch (s) {
    case Simd::kSse:
      return "SSE";
    case Simd::kAvx:
      return "AVX";
    case Simd::kAvx2:
      return "AVX2";
    case Simd::kAvx512:
      return "AVX-512";
    case Simd::kUnknown:
      break;
  }
  return "unknown";
}

Simd cpu_simd() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Simd::kAvx512;
  if (__builtin_cpu_supports("avx2")) return Simd::kAvx2;
  if (__builtin_cpu_supports("avx")) return Simd::kAvx;
  return Simd::kSse;
#else
  return Simd::kUnknown;
#endif
}

Simd kernel_simd(const std::string& corename) {
  // OpenBLAS's DYNAMIC_ARCH x86-64 targets (driver/others/dynamic.c's corename list), by the
  // widest vectors their kernels use.
  struct Entry {
    const char* name;
    Simd simd;
  };
  static const Entry kTable[] = {
      {"katmai", Simd::kSse},        {"coppermine", Simd::kSse},
      {"northwood", Simd::kSse},     {"prescott", Simd::kSse},
      {"banias", Simd::kSse},        {"atom", Simd::kSse},
      {"core2", Simd::kSse},         {"penryn", Simd::kSse},
      {"dunnington", Simd::kSse},    {"nehalem", Simd::kSse},
      {"athlon", Simd::kSse},        {"opteron", Simd::kSse},
      {"opteron(sse3)", Simd::kSse}, {"barcelona", Simd::kSse},
      {"nano", Simd::kSse},          {"bobcat", Simd::kSse},
      {"sandybridge", Simd::kAvx},   {"bulldozer", Simd::kAvx},
      {"piledriver", Simd::kAvx},    {"steamroller", Simd::kAvx},
      {"haswell", Simd::kAvx2},      {"excavator", Simd::kAvx2},
      {"zen", Simd::kAvx2},          {"skylakex", Simd::kAvx512},
      {"cooperlake", Simd::kAvx512}, {"sapphirerapids", Simd::kAvx512},
  };
  std::string lower = corename;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const Entry& e : kTable)
    if (lower == e.name) return e.simd;
  return Simd::kUnknown;
}

std::string blas_kernel_warning(const std::string& corename, Simd cpu, const char* coretype_env,
                                const std::string& library) {
  const Simd kernels = kernel_simd(corename);
  if (kernels == Simd::kUnknown || cpu == Simd::kUnknown || kernels >= cpu) return {};
  const bool from_env = coretype_env != nullptr && coretype_env[0] != '\0';
  const char* widest = cpu == Simd::kAvx512 ? "SkylakeX"
                       : cpu == Simd::kAvx2 ? "Haswell"
                                            : "Sandybridge";
  const std::string why =
      from_env ? fmt::format("OPENBLAS_CORETYPE={} in the environment asks for them", coretype_env)
               : fmt::format("{} does not recognise this CPU", library);
  return fmt::format(
      "the BLAS runs {} kernels ({}) on a CPU with {}: {}; OPENBLAS_CORETYPE={} selects {} "
      "kernels (measured: GEMMs up to 3.8x faster; docs/performance.md, \"BLAS kernels\")",
      corename, simd_name(kernels), simd_name(cpu), why, widest, simd_name(cpu));
}

}  // namespace gptqd::cpu
