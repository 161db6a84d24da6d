// Read-only memory mapping of a whole file, so tensors are read in place and
// multi-hundred-gigabyte checkpoints never have to fit in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace gptqd {

class MmapFile {
 public:
  // Maps `path` read-only (MAP_PRIVATE). Throws InputError naming the path if it
  // cannot be opened, is not a regular file, or cannot be mapped. An empty file
  // gives size() == 0 and data() == nullptr.
  static MmapFile open(const std::string& path);

  MmapFile() = default;
  ~MmapFile();
  MmapFile(const MmapFile&) = delete;
  MmapFile& operator=(const MmapFile&) = delete;
  MmapFile(MmapFile&& o) noexcept;
  MmapFile& operator=(MmapFile&& o) noexcept;

  const std::string& path() const { return path_; }
  // Bytes in the file when it was opened.
  uint64_t size() const { return size_; }
  // Start of the mapping; valid for size() bytes while this object lives.
  const uint8_t* data() const { return data_; }

 private:
  void reset();

  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace gptqd
