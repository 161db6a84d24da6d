// libFuzzer: any bytes as a .safetensors file must open or throw InputError, and every tensor of
// a file that opened must convert to fp32 (its bytes lie inside the file). The bytes go to a
// memfd opened by its /proc path, so the reader's own mmap path runs. Run: scripts/fuzz.sh.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/model/safetensors.h"
#include "base/check.h"

namespace {

// One memfd for the whole run, rewritten per input.
int input_fd() {
  static const int fd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
  if (fd < 0) std::abort();
  return fd;
}

void write_input(const uint8_t* data, size_t size) {
  const int fd = input_fd();
  if (ftruncate(fd, 0) != 0) std::abort();
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  write_input(data, size);
  const std::string path = "/proc/self/fd/" + std::to_string(input_fd());
  try {
    const gptqd::SafetensorsFile f = gptqd::SafetensorsFile::open(path);
    uint64_t covered = 0;
    for (const gptqd::TensorInfo& t : f.tensors()) {
      if (f.find(t.name) != &t) std::abort();
      covered += t.nbytes();
      if (t.dtype == gptqd::DType::BOOL) continue;
      std::vector<float> out(static_cast<size_t>(t.numel()));
      f.read_f32_into(t, out.data());
    }
    // The tensors tile the data section exactly.
    if (f.data_offset() + covered != size) std::abort();
  } catch (const gptqd::InputError&) {
  }
  return 0;
}
