// A Hugging Face checkpoint directory of any supported family: config.json plus either one
// model.safetensors or model.safetensors.index.json and its shards. Tensors are addressed by
// canonical name (io/model/model_spec.h: the family's prefixes stripped) whatever prefix the files
// use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/model/model_spec.h"
#include "io/model/safetensors.h"

namespace gptqd {

class HfModel {  // move-only
 public:
  // config.json + model.safetensors OR model.safetensors.index.json + shards.
  // Checks at once (cheaply, without reading tensor data): the config (any family); that
  // index entries name existing plain files inside `dir`; that no tensor is present both
  // with and without the family's prefix; that every tensor of spec().all_tensors() is
  // listed. A single model.safetensors is opened (mapped, header validated)
  // here; shards of an index are opened on first use, when every tensor the index
  // maps to the shard must be in it. Errors: InputError naming the file or tensor.
  static HfModel open(const std::string& dir);

  HfModel(HfModel&&) noexcept;
  HfModel& operator=(HfModel&&) noexcept;
  ~HfModel();

  const ModelConfig& config() const;
  // The family's declarations for this config.
  const ModelSpec& spec() const;
  const std::string& dir() const;
  bool has(const std::string& canonical) const;
  // Every canonical name the directory holds, sorted.
  std::vector<std::string> tensor_names() const;
  // The tensor's entry in its shard (opening the shard if needed); InputError
  // naming the tensor and the directory if absent.
  const TensorInfo& info(const std::string& canonical) const;
  // Path of the file that holds the tensor.
  std::string file_of(const std::string& canonical) const;
  // Reads a tensor by canonical name (with or without "transformer." prefix in the files), checks
  // its shape equals `expect` (error names tensor, expected and actual shape), converts to fp32.
  // In an FP8 checkpoint (config().fp8.on) a weight stored as F8_E4M3 is dequantized with its
  // block scales `<name>_scale_inv` (kernels/fp8.h, fp32, no rounding); an F8_E4M3 tensor
  // anywhere else is refused, as are the scale defects validate_shapes lists.
  std::vector<float> read_f32(const std::string& canonical,
                              const std::vector<int64_t>& expect) const;
  // The same, calling `each` (when not empty) on the tensor's bytes as stored, piece by piece
  // as they are converted (SafetensorsFile::read_f32_into with a visitor); for an FP8 weight,
  // its codes and then its scales' bytes.
  std::vector<float> read_f32(const std::string& canonical, const std::vector<int64_t>& expect,
                              const SafetensorsFile::ByteVisitor& each) const;
  // Total bytes (in the file's dtype) of the named tensors; for planning.
  uint64_t bytes_of(const std::string& canonical) const;
  // Opens every shard and checks the shape and dtype (a float type) of every tensor of
  // spec().all_tensors(); reads no tensor data. F8_E4M3 is accepted only in an FP8 checkpoint,
  // for a matrix that modules_to_not_convert does not keep unquantized, with its scale present,
  // F32, of shape [ceil(rows / block_rows), ceil(cols / block_cols)]; a scale beside a tensor
  // that is not F8_E4M3 is refused. Errors: InputError naming the tensor.
  void validate_shapes() const;

  // Thread-safe: const methods may be called concurrently (shards open under a lock).
 private:
  struct Impl;
  explicit HfModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gptqd
