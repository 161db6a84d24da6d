// Host memory for the CPU backend's large buffers. Big allocations get
// transparent huge pages where the kernel offers them on request (Linux THP
// in "madvise" mode, the common default): a fresh 4 KiB page costs a fault
// and a clear on first touch, which for the GPTQ buffers of one wide layer
// (hundreds of MB, allocated per layer) is a noticeable share of the layer's
// time, and far more so under virtualization. 2 MiB pages take 512x fewer.
#pragma once

#include <cstddef>

namespace gptqd::cpu {

// At least `bytes` bytes (> 0) aligned to 64 bytes, or to 2 MiB and advised
// for huge pages when bytes >= kHugeMin. Not initialised. Release with
// std::free. Throws gptqd::Error when out of memory.
void* alloc_bytes(size_t bytes);

// Allocations of at least this many bytes are advised for huge pages.
constexpr size_t kHugeMin = size_t{4} << 20;

}  // namespace gptqd::cpu
