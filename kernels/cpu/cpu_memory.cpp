#include "kernels/cpu/cpu_memory.h"

#include <sys/mman.h>

#include <cstdlib>

#include "base/check.h"

namespace gptqd::cpu {
namespace {

constexpr size_t kAlignment = 64;  // a cache line and an AVX-512 vector
constexpr size_t kHugePage = size_t{2} << 20;

}  // namespace

void* alloc_bytes(size_t bytes) {
  const size_t align = bytes >= kHugeMin ? kHugePage : kAlignment;
  const size_t rounded = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  GPTQD_CHECK(p != nullptr, "cpu alloc of {} bytes failed", rounded);
  // Advice only: where THP is off or the range cannot be backed by huge pages
  // the memory works as usual, so the result is not checked.
  if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

}  // namespace gptqd::cpu
