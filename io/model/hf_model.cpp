#include "io/model/hf_model.h"

#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "base/check.h"
#include "io/model/config_json.h"
#include "io/model/fp8_config.h"
#include "io/model/json_strict.h"
#include "kernels/fp8.h"

namespace gptqd {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

std::string join(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / file).string();
}

// Values [first, first + n) of tensor t (converted to fp32 in `all`): InputError naming the file,
// the tensor and the index of the first one that is NaN or infinite.
void check_finite_piece(const std::string& path, const TensorInfo& t, const float* all,
                        size_t first, size_t n) {
  const float* v = all + first;
  bool finite = true;  // without a branch (vectorized), then the culprit if any
  for (size_t i = 0; i < n; ++i) finite &= std::fabs(v[i]) <= FLT_MAX;
  if (finite) return;
  size_t i = 0;
  while (std::isfinite(v[i])) ++i;
  // The index in the tensor's shape, [r, c] for a matrix.
  std::vector<int64_t> index(t.shape.size());
  uint64_t flat = first + i;
  for (size_t d = t.shape.size(); d-- > 0;) {
    const auto dim = static_cast<uint64_t>(std::max<int64_t>(t.shape[d], 1));
    index[d] = static_cast<int64_t>(flat % dim);
    flat /= dim;
  }
  std::string at;
  for (int64_t x : index) at += (at.empty() ? "" : ", ") + std::to_string(x);
  throw InputError(fmt::format(
      "{}: tensor {} has a non-finite value {} at [{}]; the model's weights are damaged", path,
      quote_name(t.name), v[i], at));
}

// A weight_map file name must be a plain name inside the directory.
bool is_plain_file_name(const std::string& f) {
  return !f.empty() && f != "." && f != ".." && f.find('/') == std::string::npos &&
         f.find('\\') == std::string::npos && f.find('\0') == std::string::npos;
}

}  // namespace

struct HfModel::Impl {
  struct Entry {
    size_t shard = 0;
    std::string name_in_file;
  };
  std::string dir;
  ModelSpec spec;
  std::string listing;                   // the file that lists the tensors, for messages
  std::vector<std::string> shard_files;  // plain names inside dir
  std::vector<std::vector<std::string>> shard_names;  // names in file each shard must hold
  std::unordered_map<std::string, Entry> entries;     // canonical -> where
  mutable std::mutex mu;
  mutable std::vector<std::unique_ptr<SafetensorsFile>> shards;

  void add(const std::string& name_in_file, size_t shard) {
    const std::string canonical = spec.canonical(name_in_file);
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

  // The block scales of tensor t (canonical name `canonical`, in file f) when the checkpoint is
  // FP8 (ModelConfig::fp8) and t is stored as F8_E4M3; nullptr for any other tensor. Checks what
  // can be checked without reading data: the scale is present, fp32, of the shape the block size
  // gives, t is a matrix not kept unquantized by modules_to_not_convert; a scale beside a tensor
  // that is not FP8 is refused too. InputError naming the tensor.
  const TensorInfo* fp8_scale(const std::string& canonical, const SafetensorsFile& f,
                              const TensorInfo& t) const {
    const Fp8Weights& fp8 = spec.config.fp8;
    const std::string scale_name = canonical + "_scale_inv";
    const bool has_scale = entries.count(scale_name) != 0;
    if (t.dtype != DType::F8_E4M3) {
      GPTQD_INPUT_CHECK(!has_scale,
                        "{}: tensor {} is stored as {}, yet {} holds a block scale {} for it "
                        "(scales belong to F8_E4M3 weights)",
                        f.path(), quote_name(t.name), dtype_name(t.dtype), dir,
                        quote_name(entry(scale_name).name_in_file));
      return nullptr;
    }
    GPTQD_INPUT_CHECK(fp8.on,
                      "{}: tensor {} is stored as F8_E4M3 (FP8, whose values need their block "
                      "scales); {}",
                      f.path(), quote_name(t.name),
                      spec.config.mla.kv_lora_rank > 0
                          ? "config.json has no FP8 quantization_config to say how to read it"
                          : "the " + spec.config.model_type +
                                " family is read from fp32, fp16 or bf16 weights only");
    GPTQD_INPUT_CHECK(t.shape.size() == 2,
                      "{}: tensor {} is stored as F8_E4M3 with shape {}; FP8 block scales are "
                      "read for linear weights (matrices) only",
                      f.path(), quote_name(t.name), shape_string(t.shape));
    const std::string module =
        t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0
            ? t.name.substr(0, t.name.size() - 7)
            : t.name;
    const std::string kept = fp8_unconverted_by(fp8, module);
    GPTQD_INPUT_CHECK(kept.empty(),
                      "{}: tensor {} is stored as F8_E4M3, but quantization_config."
                      "modules_to_not_convert keeps module {} unquantized (pattern {})",
                      f.path(), quote_name(t.name), quote_name(module), quote_name(kept));
    GPTQD_INPUT_CHECK(has_scale,
                      "{}: tensor {} is stored as F8_E4M3 but its block scale {} is missing",
                      listing, quote_name(t.name), quote_name(t.name + "_scale_inv"));
    const Entry& se = entry(scale_name);
    const SafetensorsFile& sf = shard(se.shard);
    const TensorInfo& s = *sf.find(se.name_in_file);
    GPTQD_INPUT_CHECK(s.dtype == DType::F32, "{}: FP8 block scale {} is stored as {}, expected F32",
                      sf.path(), quote_name(s.name), dtype_name(s.dtype));
    const std::vector<int64_t> want = {(t.shape[0] + fp8.block_rows - 1) / fp8.block_rows,
                                       (t.shape[1] + fp8.block_cols - 1) / fp8.block_cols};
    GPTQD_INPUT_CHECK(s.shape == want,
                      "{}: FP8 block scale {}: expected shape {} (a {} weight in blocks of {} x "
                      "{}), got {}",
                      sf.path(), quote_name(s.name), shape_string(want), shape_string(t.shape),
                      fp8.block_rows, fp8.block_cols, shape_string(s.shape));
    return &s;
  }
};

HfModel::HfModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HfModel::HfModel(HfModel&&) noexcept = default;
HfModel& HfModel::operator=(HfModel&&) noexcept = default;
HfModel::~HfModel() = default;

HfModel HfModel::open(const std::string& dir) {
  auto m = std::make_unique<Impl>();
  m->dir = dir;
  m->spec = ModelSpec::of(load_model_config(dir));

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
  for (const TensorSpec& t : m->spec.all_tensors()) {
    GPTQD_INPUT_CHECK(m->entries.count(t.name) != 0,
                      "{}: tensor {} of a {}-layer {} model is missing", m->listing,
                      quote_name(t.name), m->spec.n_layer, m->spec.config.model_type);
  }
  return HfModel(std::move(m));
}

const ModelConfig& HfModel::config() const { return impl_->spec.config; }

const ModelSpec& HfModel::spec() const { return impl_->spec; }

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
  return read_f32(canonical, expect, {});
}

std::vector<float> HfModel::read_f32(const std::string& canonical,
                                     const std::vector<int64_t>& expect,
                                     const SafetensorsFile::ByteVisitor& each) const {
  const Impl::Entry& e = impl_->entry(canonical);
  const SafetensorsFile& f = impl_->shard(e.shard);
  const TensorInfo& t = *f.find(e.name_in_file);
  GPTQD_INPUT_CHECK(t.shape == expect, "{}: tensor {}: expected shape {}, got {}", f.path(),
                    quote_name(t.name), shape_string(expect), shape_string(t.shape));
  std::vector<float> out(static_cast<size_t>(t.numel()));
  if (const TensorInfo* s = impl_->fp8_scale(canonical, f, t)) {
    // FP8: the codes times their block's scale (kernels/fp8.h), then the same finiteness check
    // (a NaN code, S.1111.111, stays NaN). The visitor sees the codes, then the scales.
    const SafetensorsFile& sf = impl_->shard(impl_->entry(canonical + "_scale_inv").shard);
    std::vector<float> scale(static_cast<size_t>(s->numel()));
    sf.read_f32_into(*s, scale.data());
    const Fp8Weights& fp8 = impl_->spec.config.fp8;
    dequantize_fp8_blocks(f.data(t), t.shape[0], t.shape[1], scale.data(), s->shape[0], s->shape[1],
                          fp8.block_rows, fp8.block_cols, /*round_bf16=*/false, out.data(),
                          f.path() + ": tensor " + quote_name(t.name));
    check_finite_piece(f.path(), t, out.data(), 0, out.size());
    if (each) {
      each(f.data(t), t.nbytes());
      each(sf.data(*s), s->nbytes());
    }
    return out;
  }
  // A NaN or Inf weight would surface blocks later as a non-finite Hessian blamed on the
  // calibration inputs: refused here, naming the file, tensor and index. Each piece is checked
  // right after its conversion, while still in cache (no second pass over memory).
  const uint8_t* base = f.data(t);
  const size_t elem = dtype_size(t.dtype);
  f.read_f32_into(t, out.data(), [&](const uint8_t* p, size_t n) {
    const size_t first = static_cast<size_t>(p - base) / elem;
    check_finite_piece(f.path(), t, out.data(), first, n / elem);
    if (each) each(p, n);
  });
  return out;
}

uint64_t HfModel::bytes_of(const std::string& canonical) const {
  return impl_->info(canonical).nbytes();
}

void HfModel::validate_shapes() const {
  for (const TensorSpec& spec : impl_->spec.all_tensors()) {
    const Impl::Entry& e = impl_->entry(spec.name);
    const SafetensorsFile& f = impl_->shard(e.shard);
    const TensorInfo& t = *f.find(e.name_in_file);
    const std::vector<int64_t>& expect = spec.shape;
    GPTQD_INPUT_CHECK(t.shape == expect, "{}: tensor {}: expected shape {}, got {}", f.path(),
                      quote_name(t.name), shape_string(expect), shape_string(t.shape));
    // FP8 weights with their block scales (checked here, before any work), or a float type.
    const bool fp8 = impl_->fp8_scale(spec.name, f, t) != nullptr;
    GPTQD_INPUT_CHECK(fp8 || t.dtype == DType::F32 || t.dtype == DType::F16 ||
                          t.dtype == DType::BF16 || t.dtype == DType::F64,
                      "{}: tensor {} is stored as {}, expected a floating-point type", f.path(),
                      quote_name(t.name), dtype_name(t.dtype));
  }
  // An FP8 config quantizes every linear it does not list in modules_to_not_convert (transformers
  // loads each into an FP8Linear): a linear stored otherwise means files and config disagree.
  const ModelSpec& ms = impl_->spec;
  if (!ms.config.fp8.on) return;
  for (int64_t b = 0; b < ms.n_layer; ++b) {
    for (const LinearSpec& l : ms.block(b).linears) {  // its kind's: dense first blocks differ
      const TensorInfo& t = impl_->info(ms.block_tensor_name(b, l.module + ".weight"));
      if (t.dtype == DType::F8_E4M3) continue;
      const std::string module = t.name.substr(0, t.name.size() - std::string(".weight").size());
      GPTQD_INPUT_CHECK(!fp8_unconverted_by(ms.config.fp8, module).empty(),
                        "{}: tensor {} is stored as {}, but config.json's quantization_config "
                        "(quant_method fp8) stores every linear in F8_E4M3 unless "
                        "modules_to_not_convert lists it: the files do not match their config",
                        file_of(ms.block_tensor_name(b, l.module + ".weight")), quote_name(t.name),
                        dtype_name(t.dtype));
    }
  }
}

}  // namespace gptqd
