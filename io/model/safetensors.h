// safetensors files: a little-endian u64 header length N, N bytes of JSON
// ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
//   "__metadata__": {string: string}}), then the data section. The reader maps
// the file and validates the whole header before anything is read; the writer
// produces the layout of the reference implementation (huggingface/safetensors).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/files/staged_file.h"
#include "io/model/mmap_file.h"
#include "kernels/dtype.h"

namespace gptqd {

// The reference implementation's limit on the header size.
constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the data section
  // Product of the dims (1 for a scalar); the reader guarantees it does not overflow.
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// "[2, 3]": shapes in error messages.
std::string shape_string(const std::vector<int64_t>& shape);

class SafetensorsFile {  // move-only; mmaps the file and validates everything at open()
 public:
  // Maps `path` and validates: at least 8 bytes; header length <= 100 MB and
  // inside the file; header a JSON object without duplicate keys; every entry
  // an object with a known "dtype" string, "shape" of non-negative integers and
  // "data_offsets" [begin, end] with begin <= end; numel x dtype size (checked
  // for overflow) == end - begin; the offsets tile the data section exactly
  // (from 0, no gap, no overlap, no trailing bytes); "__metadata__", if present,
  // an object of strings. Any failure: InputError "<path>: <culprit>".
  static SafetensorsFile open(const std::string& path);

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;

  const std::string& path() const { return map_.path(); }
  // In offset order (ties, i.e. empty tensors, by name).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr if absent.
  const TensorInfo* find(const std::string& name) const;
  // Pointer into the mapping, t.nbytes() long, any alignment. `t` must come from
  // this file's tensors() / find().
  const uint8_t* data(const TensorInfo& t) const;
  // The tensor converted to fp32 (row-major, numel() values). Throws InputError
  // naming the file and tensor if it is absent or has dtype BOOL.
  std::vector<float> read_f32(const std::string& name) const;
  // Same for a tensor of this file, written to `dst` (t.numel() floats).
  void read_f32_into(const TensorInfo& t, float* dst) const;
  // The same, and `each` is called on every piece of the tensor's bytes as stored (in order,
  // covering all t.nbytes(), pieces of at most kVisitPiece bytes and whole elements) right after
  // the piece is converted, while it is still in the CPU's cache: a digest of the bytes read
  // (worker/model_weights.h) costs no second pass over memory.
  using ByteVisitor = std::function<void(const uint8_t* data, size_t n)>;
  static constexpr size_t kVisitPiece = size_t{256} << 10;
  void read_f32_into(const TensorInfo& t, float* dst, const ByteVisitor& each) const;
  // "__metadata__" (empty if the file has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Byte offset of the data section in the file (8 + header length).
  uint64_t data_offset() const { return data_offset_; }

 private:
  SafetensorsFile() = default;

  MmapFile map_;
  uint64_t data_offset_ = 0;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

struct TensorOut {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // numel x dtype_size(dtype) bytes; may be null when numel is 0
};

// Writes the file into `out` (a temporary file, io/files/staged_file.h) without committing it.
// Tensors laid out in the given order, header padded with spaces to a multiple of 8 bytes as the
// reference writer does. The header lists "__metadata__" (if any) first, then the tensors in the
// given order. Throws Error for duplicate or reserved names and negative dims, InputError naming
// the path if the file cannot be written.
void write_safetensors(StagedFile& out, const std::vector<TensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The same to `path`, atomically: a temporary file beside it, renamed into place; never through
// a symbolic link at `path` (refused, naming `role`).
void write_safetensors(const std::string& path, const std::vector<TensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata = {},
                       const std::string& role = "output");

}  // namespace gptqd
