#include "io/hf_model.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "io/json_strict.h"
#include "kernels/check.h"

namespace gptqd {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kConfigFile = "config.json";
constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
// config.json and the index are a few kB; anything this large is not one.
constexpr uint64_t kMaxJsonFile = 64ull << 20;

std::string join(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / file).string();
}

std::string read_small_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  GPTQD_INPUT_CHECK(f != nullptr, "cannot read {}: {}", path, std::strerror(errno));
  std::string text;
  char buf[1 << 16];
  size_t got = 0;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) {
    text.append(buf, got);
    if (text.size() > kMaxJsonFile) {
      std::fclose(f);
      throw InputError(
          fmt::format("{}: larger than {} bytes, not a JSON config", path, kMaxJsonFile));
    }
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  GPTQD_INPUT_CHECK(!failed, "cannot read {}: I/O error", path);
  return text;
}

std::string alias_list(std::initializer_list<const char*> keys) {
  std::string s;
  for (const char* k : keys) {
    s += s.empty() ? fmt::format("'{}'", k) : fmt::format(" (or '{}')", k);
  }
  return s;
}

// The integer under the first present key of `keys`; every present spelling must agree.
std::optional<int64_t> get_int(const json& j, std::initializer_list<const char*> keys,
                               const std::string& src) {
  std::optional<int64_t> value;
  const char* first = nullptr;
  for (const char* k : keys) {
    const auto it = j.find(k);
    if (it == j.end()) continue;
    GPTQD_INPUT_CHECK(it->is_number_integer(), "{}: key '{}' is {} ({}), expected an integer", src,
                      k, json_type_name(*it), it->dump().substr(0, 40));
    GPTQD_INPUT_CHECK(!(it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX),
                      "{}: key '{}' is too large", src, k);
    const int64_t v = it->get<int64_t>();
    GPTQD_INPUT_CHECK(!value || *value == v, "{}: keys '{}' ({}) and '{}' ({}) disagree", src,
                      first, *value, k, v);
    value = v;
    first = k;
  }
  return value;
}

int64_t require_positive(const json& j, std::initializer_list<const char*> keys,
                         const std::string& src) {
  const std::optional<int64_t> v = get_int(j, keys, src);
  GPTQD_INPUT_CHECK(v.has_value(), "{}: missing key {}", src, alias_list(keys));
  GPTQD_INPUT_CHECK(*v > 0, "{}: key '{}' is {}, expected a positive integer", src, *keys.begin(),
                    *v);
  return *v;
}

// A token id that may be absent or null (keeps `dflt`).
int64_t optional_id(const json& j, const char* key, int64_t dflt, const std::string& src) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  return *get_int(j, {key}, src);
}

// A weight_map file name must be a plain name inside the directory.
bool is_plain_file_name(const std::string& f) {
  return !f.empty() && f != "." && f != ".." && f.find('/') == std::string::npos &&
         f.find('\\') == std::string::npos && f.find('\0') == std::string::npos;
}

}  // namespace

BloomConfig parse_bloom_config(const std::string& json_text, const std::string& source_name) {
  const std::string& src = source_name;
  const json j = parse_json_strict(json_text, src);
  GPTQD_INPUT_CHECK(j.is_object(), "{}: expected a JSON object, got {}", src, json_type_name(j));

  if (const auto mt = j.find("model_type"); mt != j.end()) {
    GPTQD_INPUT_CHECK(mt->is_string() && mt->get<std::string>() == "bloom",
                      "{}: model_type is {}, only 'bloom' is supported", src,
                      mt->dump().substr(0, 60));
  }
  BloomConfig c;
  c.n_layer = require_positive(j, {"n_layer", "num_hidden_layers"}, src);
  // HF's BloomConfig lets a legacy n_embed override hidden_size; here both must agree.
  c.hidden = require_positive(j, {"hidden_size", "n_embed"}, src);
  c.n_head = require_positive(j, {"n_head", "num_attention_heads"}, src);
  c.vocab = require_positive(j, {"vocab_size"}, src);
  GPTQD_INPUT_CHECK(c.hidden % c.n_head == 0,
                    "{}: hidden size {} is not divisible by the number of heads {}", src, c.hidden,
                    c.n_head);

  if (const auto it = j.find("layer_norm_epsilon"); it != j.end()) {
    GPTQD_INPUT_CHECK(it->is_number(), "{}: key 'layer_norm_epsilon' is {}, expected a number", src,
                      json_type_name(*it));
    c.layer_norm_epsilon = it->get<double>();
    GPTQD_INPUT_CHECK(c.layer_norm_epsilon > 0, "{}: key 'layer_norm_epsilon' is {}, expected > 0",
                      src, c.layer_norm_epsilon);
  }
  if (const auto it = j.find("apply_residual_connection_post_layernorm"); it != j.end()) {
    GPTQD_INPUT_CHECK(
        it->is_boolean(),
        "{}: key 'apply_residual_connection_post_layernorm' is {}, expected a boolean", src,
        json_type_name(*it));
    c.apply_residual_connection_post_layernorm = it->get<bool>();
  }
  c.bos_token_id = optional_id(j, "bos_token_id", c.bos_token_id, src);
  c.eos_token_id = optional_id(j, "eos_token_id", c.eos_token_id, src);
  c.pad_token_id = optional_id(j, "pad_token_id", c.pad_token_id, src);
  if (const auto it = j.find("torch_dtype"); it != j.end() && !it->is_null()) {
    GPTQD_INPUT_CHECK(it->is_string(), "{}: key 'torch_dtype' is {}, expected a string", src,
                      json_type_name(*it));
    c.torch_dtype = it->get<std::string>();
  }
  c.json = json_text;
  return c;
}

BloomConfig load_bloom_config(const std::string& model_dir) {
  const std::string path = join(model_dir, kConfigFile);
  return parse_bloom_config(read_small_file(path), path);
}

std::vector<int64_t> block_tensor_shape(const BloomConfig& c, BlockTensor t) {
  const int64_t h = c.hidden;
  switch (t) {
    case BlockTensor::InputLnWeight:
    case BlockTensor::InputLnBias:
    case BlockTensor::PostLnWeight:
    case BlockTensor::PostLnBias:
    case BlockTensor::DenseBias:
    case BlockTensor::FourHhBias:
      return {h};
    case BlockTensor::QkvWeight:
      return {3 * h, h};
    case BlockTensor::QkvBias:
      return {3 * h};
    case BlockTensor::DenseWeight:
      return {h, h};
    case BlockTensor::H4hWeight:
      return {c.ffn(), h};
    case BlockTensor::H4hBias:
      return {c.ffn()};
    case BlockTensor::FourHhWeight:
      return {h, c.ffn()};
  }
  GPTQD_CHECK(false, "block_tensor_shape: invalid BlockTensor {}", static_cast<int>(t));
  return {};
}

std::vector<int64_t> bloom_tensor_shape(const BloomConfig& c, const std::string& canonical) {
  if (canonical == kWordEmbeddings) return {c.vocab, c.hidden};
  if (canonical == kEmbLnWeight || canonical == kEmbLnBias || canonical == kFinalLnWeight ||
      canonical == kFinalLnBias) {
    return {c.hidden};
  }
  // "h.<block>.<suffix>": parse the block, then confirm by rebuilding the name.
  const size_t dot = canonical.find('.', 2);
  if (canonical.compare(0, 2, "h.") == 0 && dot != std::string::npos && dot > 2 && dot - 2 < 10 &&
      std::all_of(canonical.begin() + 2, canonical.begin() + dot,
                  [](char ch) { return ch >= '0' && ch <= '9'; })) {
    const int64_t b = std::stoll(canonical.substr(2, dot - 2));
    for (BlockTensor t : all_block_tensors()) {
      if (b < c.n_layer && canonical == block_tensor_name(b, t)) return block_tensor_shape(c, t);
    }
  }
  GPTQD_CHECK(false, "bloom_tensor_shape: {} is not a tensor of a {}-layer BLOOM model",
              quote_name(canonical), c.n_layer);
  return {};
}

struct HfModel::Impl {
  struct Entry {
    size_t shard = 0;
    std::string name_in_file;
  };
  std::string dir;
  BloomConfig config;
  std::string listing;                   // the file that lists the tensors, for messages
  std::vector<std::string> shard_files;  // plain names inside dir
  std::vector<std::vector<std::string>> shard_names;  // names in file each shard must hold
  std::unordered_map<std::string, Entry> entries;     // canonical -> where
  mutable std::mutex mu;
  mutable std::vector<std::unique_ptr<SafetensorsFile>> shards;

  void add(const std::string& name_in_file, size_t shard) {
    const std::string canonical = canonical_tensor_name(name_in_file);
    const auto [it, inserted] = entries.emplace(canonical, Entry{shard, name_in_file});
    GPTQD_INPUT_CHECK(inserted, "{}: tensor {} appears twice, as {} and {}", listing,
                      quote_name(canonical), quote_name(it->second.name_in_file),
                      quote_name(name_in_file));
    shard_names[shard].push_back(name_in_file);
  }

  size_t add_shard(const std::string& file) {
    shard_files.push_back(file);
    shard_names.emplace_back();
    shards.emplace_back();
    return shard_files.size() - 1;
  }

  const Entry& entry(const std::string& canonical) const {
    const auto it = entries.find(canonical);
    GPTQD_INPUT_CHECK(it != entries.end(), "tensor {} not found in model directory {}",
                      quote_name(canonical), dir);
    return it->second;
  }

  // The shard, opened and checked against the index on first use.
  const SafetensorsFile& shard(size_t i) const {
    std::lock_guard<std::mutex> lock(mu);
    if (!shards[i]) {
      auto f = std::make_unique<SafetensorsFile>(SafetensorsFile::open(join(dir, shard_files[i])));
      for (const std::string& n : shard_names[i]) {
        GPTQD_INPUT_CHECK(f->find(n) != nullptr,
                          "{}: maps tensor {} to {}, which does not contain it", listing,
                          quote_name(n), f->path());
      }
      shards[i] = std::move(f);
    }
    return *shards[i];
  }

  const TensorInfo& info(const std::string& canonical) const {
    const Entry& e = entry(canonical);
    return *shard(e.shard).find(e.name_in_file);
  }
};

HfModel::HfModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HfModel::HfModel(HfModel&&) noexcept = default;
HfModel& HfModel::operator=(HfModel&&) noexcept = default;
HfModel::~HfModel() = default;

HfModel HfModel::open(const std::string& dir) {
  auto m = std::make_unique<Impl>();
  m->dir = dir;
  m->config = load_bloom_config(dir);

  const std::string single = join(dir, kSingleFile);
  const std::string index = join(dir, kIndexFile);
  std::error_code ec;
  if (fs::exists(single, ec)) {
    // As transformers does, a single file wins over an index.
    m->listing = single;
    const size_t s = m->add_shard(kSingleFile);
    m->shards[s] = std::make_unique<SafetensorsFile>(SafetensorsFile::open(single));
    for (const TensorInfo& t : m->shards[s]->tensors()) m->add(t.name, s);
  } else if (fs::exists(index, ec)) {
    m->listing = index;
    const json j = parse_json_strict(read_small_file(index), index);
    GPTQD_INPUT_CHECK(j.is_object(), "{}: expected a JSON object, got {}", index,
                      json_type_name(j));
    const auto wm = j.find("weight_map");
    GPTQD_INPUT_CHECK(wm != j.end(), "{}: missing key 'weight_map'", index);
    GPTQD_INPUT_CHECK(wm->is_object(), "{}: 'weight_map' is {}, expected an object", index,
                      json_type_name(*wm));
    std::unordered_map<std::string, size_t> shard_of_file;
    for (const auto& item : wm->items()) {
      GPTQD_INPUT_CHECK(item.value().is_string(),
                        "{}: weight_map entry {} is {}, expected a file name", index,
                        quote_name(item.key()), json_type_name(item.value()));
      const std::string file = item.value().get<std::string>();
      GPTQD_INPUT_CHECK(is_plain_file_name(file),
                        "{}: weight_map entry {} names {}, not a plain file name inside the model "
                        "directory",
                        index, quote_name(item.key()), quote_name(file));
      auto it = shard_of_file.find(file);
      if (it == shard_of_file.end()) {
        const std::string path = join(dir, file);
        GPTQD_INPUT_CHECK(fs::is_regular_file(path, ec),
                          "{}: weight_map entry {} names {}, which does not exist", index,
                          quote_name(item.key()), path);
        it = shard_of_file.emplace(file, m->add_shard(file)).first;
      }
      m->add(item.key(), it->second);
    }
  } else {
    throw InputError(fmt::format("{}: neither {} nor {} found", dir, kSingleFile, kIndexFile));
  }

  // Fail before any work if the directory cannot hold a whole model.
  for (const std::string& name : bloom_tensor_names(m->config.n_layer)) {
    GPTQD_INPUT_CHECK(m->entries.count(name) != 0,
                      "{}: tensor {} of a {}-layer BLOOM model is missing", m->listing,
                      quote_name(name), m->config.n_layer);
  }
  return HfModel(std::move(m));
}

const BloomConfig& HfModel::config() const { return impl_->config; }

const std::string& HfModel::dir() const { return impl_->dir; }

bool HfModel::has(const std::string& canonical) const {
  return impl_->entries.count(canonical) != 0;
}

std::vector<std::string> HfModel::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(impl_->entries.size());
  for (const auto& e : impl_->entries) names.push_back(e.first);
  std::sort(names.begin(), names.end());
  return names;
}

const TensorInfo& HfModel::info(const std::string& canonical) const {
  return impl_->info(canonical);
}

std::string HfModel::file_of(const std::string& canonical) const {
  return join(impl_->dir, impl_->shard_files[impl_->entry(canonical).shard]);
}

std::vector<float> HfModel::read_f32(const std::string& canonical,
                                     const std::vector<int64_t>& expect) const {
  const Impl::Entry& e = impl_->entry(canonical);
  const SafetensorsFile& f = impl_->shard(e.shard);
  const TensorInfo& t = *f.find(e.name_in_file);
  GPTQD_INPUT_CHECK(t.shape == expect, "{}: tensor {}: expected shape {}, got {}", f.path(),
                    quote_name(t.name), shape_string(expect), shape_string(t.shape));
  std::vector<float> out(static_cast<size_t>(t.numel()));
  f.read_f32_into(t, out.data());
  return out;
}

uint64_t HfModel::bytes_of(const std::string& canonical) const {
  return impl_->info(canonical).nbytes();
}

void HfModel::validate_shapes() const {
  for (const std::string& name : bloom_tensor_names(impl_->config.n_layer)) {
    const Impl::Entry& e = impl_->entry(name);
    const SafetensorsFile& f = impl_->shard(e.shard);
    const TensorInfo& t = *f.find(e.name_in_file);
    const std::vector<int64_t> expect = bloom_tensor_shape(impl_->config, name);
    GPTQD_INPUT_CHECK(t.shape == expect, "{}: tensor {}: expected shape {}, got {}", f.path(),
                      quote_name(t.name), shape_string(expect), shape_string(t.shape));
  }
}

}  // namespace gptqd
