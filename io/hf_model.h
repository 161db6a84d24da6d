// A Hugging Face BLOOM checkpoint directory: config.json plus either one
// model.safetensors or model.safetensors.index.json and its shards. Tensors are
// addressed by canonical name (io/bloom_names.h) whatever prefix the files use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/bloom_names.h"
#include "io/safetensors.h"

namespace gptqd {

struct BloomConfig {
  int64_t n_layer = 0, hidden = 0, n_head = 0, vocab = 0;
  double layer_norm_epsilon = 1e-5;
  bool apply_residual_connection_post_layernorm = false;
  int64_t bos_token_id = 1, eos_token_id = 2, pad_token_id = 3;
  std::string torch_dtype;  // as in the file, may be empty
  std::string json;         // the config.json text, verbatim
  int64_t head_dim() const { return n_head > 0 ? hidden / n_head : 0; }  // hidden / n_head
  int64_t ffn() const { return 4 * hidden; }                             // 4 * hidden
};

// Parses BLOOM's config.json. Accepts both spellings of the legacy keys
// (n_layer | num_hidden_layers, hidden_size | n_embed, n_head |
// num_attention_heads; both present must agree) and vocab_size, all required
// positive integers with hidden % n_head == 0; layer_norm_epsilon (default 1e-5),
// apply_residual_connection_post_layernorm, bos/eos/pad_token_id (null keeps the
// default) and torch_dtype are optional; model_type, if present, must be "bloom";
// other keys (pretraining_tp, slow_but_exact, ...) are ignored. Errors are
// InputError "<source_name>: ..." naming the key.
BloomConfig parse_bloom_config(const std::string& json_text, const std::string& source_name);
// Reads and parses <model_dir>/config.json.
BloomConfig load_bloom_config(const std::string& model_dir);

// Expected shape of a block tensor: qkv [3h, h], dense [h, h], h_to_4h [4h, h],
// 4h_to_h [h, 4h], their biases [rows], layer norms [h].
std::vector<int64_t> block_tensor_shape(const BloomConfig& c, BlockTensor t);
// Expected shape of any canonical BLOOM tensor (bloom_tensor_names()):
// word_embeddings [vocab, h], other layer norms [h]. Throws Error for other names.
std::vector<int64_t> bloom_tensor_shape(const BloomConfig& c, const std::string& canonical);

class HfModel {  // move-only
 public:
  // config.json + model.safetensors OR model.safetensors.index.json + shards.
  // Checks at once (cheaply, without reading tensor data): the config; that index
  // entries name existing plain files inside `dir`; that no tensor is present both
  // with and without "transformer."; that every tensor of bloom_tensor_names()
  // is listed. A single model.safetensors is opened (mapped, header validated)
  // here; shards of an index are opened on first use, when every tensor the index
  // maps to the shard must be in it. Errors: InputError naming the file or tensor.
  static HfModel open(const std::string& dir);

  HfModel(HfModel&&) noexcept;
  HfModel& operator=(HfModel&&) noexcept;
  ~HfModel();

  const BloomConfig& config() const;
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
  std::vector<float> read_f32(const std::string& canonical,
                              const std::vector<int64_t>& expect) const;
  // Total bytes (in the file's dtype) of the named tensors; for planning.
  uint64_t bytes_of(const std::string& canonical) const;
  // Opens every shard and checks the shape of every tensor of bloom_tensor_names()
  // against the config (bloom_tensor_shape()); reads no tensor data.
  void validate_shapes() const;

  // Thread-safe: const methods may be called concurrently (shards open under a lock).
 private:
  struct Impl;
  explicit HfModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gptqd
