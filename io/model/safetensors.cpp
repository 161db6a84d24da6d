#include "io/model/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "base/check.h"
#include "io/model/json_strict.h"

namespace gptqd {

using nlohmann::json;

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

namespace {

// Reads a JSON integer that must be >= 0 and fit in int64 (shapes) or uint64
// (offsets); nlohmann stores non-negative literals as number_unsigned.
bool get_unsigned(const json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;
  *out = v.get<uint64_t>();
  return true;
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const json& e) {
  const std::string where = fmt::format("{}: tensor {}", path, quote_name(name));
  GPTQD_INPUT_CHECK(e.is_object(), "{}: entry is {}, expected an object", where, json_type_name(e));
  TensorInfo t;
  t.name = name;

  const auto dt = e.find("dtype");
  GPTQD_INPUT_CHECK(dt != e.end(), "{}: missing 'dtype'", where);
  GPTQD_INPUT_CHECK(dt->is_string(), "{}: 'dtype' is {}, expected a string", where,
                    json_type_name(*dt));
  GPTQD_INPUT_CHECK(parse_dtype(dt->get<std::string>(), &t.dtype), "{}: unknown dtype {}", where,
                    quote_name(dt->get<std::string>()));

  const auto sh = e.find("shape");
  GPTQD_INPUT_CHECK(sh != e.end(), "{}: missing 'shape'", where);
  GPTQD_INPUT_CHECK(sh->is_array(), "{}: 'shape' is {}, expected an array", where,
                    json_type_name(*sh));
  for (const json& d : *sh) {
    GPTQD_INPUT_CHECK(!(d.type() == json::value_t::number_integer && d.get<int64_t>() < 0),
                      "{}: negative dimension {} in 'shape'", where, d.dump());
    uint64_t u = 0;
    GPTQD_INPUT_CHECK(get_unsigned(d, &u), "{}: 'shape' holds {} ({}), expected integers", where,
                      json_type_name(d), d.dump());
    GPTQD_INPUT_CHECK(u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                      "{}: dimension {} in 'shape' is too large", where, u);
    t.shape.push_back(static_cast<int64_t>(u));
  }

  const auto off = e.find("data_offsets");
  GPTQD_INPUT_CHECK(off != e.end(), "{}: missing 'data_offsets'", where);
  GPTQD_INPUT_CHECK(off->is_array() && off->size() == 2,
                    "{}: 'data_offsets' is {}, expected an array [begin, end]", where,
                    off->dump().substr(0, 80));
  GPTQD_INPUT_CHECK(get_unsigned((*off)[0], &t.begin) && get_unsigned((*off)[1], &t.end),
                    "{}: 'data_offsets' {} must hold two non-negative integers", where,
                    off->dump().substr(0, 80));
  GPTQD_INPUT_CHECK(t.begin <= t.end, "{}: data_offsets begin {} > end {}", where, t.begin, t.end);

  // numel x element size, refusing anything that wraps around 64 bits (a crafted
  // shape could otherwise "match" a small byte range).
  uint64_t bytes = dtype_size(t.dtype);
  uint64_t numel = 1;
  for (int64_t d : t.shape) {
    GPTQD_INPUT_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel) &&
                          numel <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                      "{}: element count of shape {} overflows 64 bits", where,
                      shape_string(t.shape));
  }
  GPTQD_INPUT_CHECK(!__builtin_mul_overflow(numel, bytes, &bytes),
                    "{}: byte size of shape {} x {} overflows 64 bits", where,
                    shape_string(t.shape), dtype_name(t.dtype));
  GPTQD_INPUT_CHECK(bytes == t.end - t.begin,
                    "{}: shape {} x {} is {} bytes but data_offsets [{}, {}] span {} bytes", where,
                    shape_string(t.shape), dtype_name(t.dtype), bytes, t.begin, t.end,
                    t.end - t.begin);
  return t;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.map_ = MmapFile::open(path);
  const uint64_t size = f.map_.size();
  const uint8_t* bytes = f.map_.data();
  GPTQD_INPUT_CHECK(size >= 8, "{}: file is {} bytes, too short for a safetensors header length",
                    path, size);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  GPTQD_INPUT_CHECK(n <= kSafetensorsMaxHeader,
                    "{}: header length {} exceeds the safetensors limit of {} bytes", path, n,
                    kSafetensorsMaxHeader);
  GPTQD_INPUT_CHECK(n <= size - 8, "{}: header length {} runs past the end of the file ({} bytes)",
                    path, n, size);
  f.data_offset_ = 8 + n;
  const uint64_t data_len = size - f.data_offset_;

  const json header =
      parse_json_strict(reinterpret_cast<const char*>(bytes + 8), n, path + ": header");
  GPTQD_INPUT_CHECK(header.is_object(), "{}: header is {}, expected a JSON object", path,
                    json_type_name(header));

  for (const auto& item : header.items()) {
    const std::string& key = item.key();
    const json& v = item.value();
    if (key == "__metadata__") {
      GPTQD_INPUT_CHECK(v.is_object(), "{}: __metadata__ is {}, expected an object of strings",
                        path, json_type_name(v));
      for (const auto& m : v.items()) {
        GPTQD_INPUT_CHECK(m.value().is_string(), "{}: __metadata__ key {} is {}, expected a string",
                          path, quote_name(m.key()), json_type_name(m.value()));
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    f.tensors_.push_back(parse_entry(path, key, v));
  }

  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  // The data section must be tiled exactly, as the reference reader demands:
  // anything else is a truncated, padded or crafted file.
  uint64_t expect = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : f.tensors_) {
    GPTQD_INPUT_CHECK(t.begin >= expect,
                      "{}: tensor {} at data_offsets [{}, {}] overlaps tensor {} which ends at {}",
                      path, quote_name(t.name), t.begin, t.end, quote_name(prev ? prev->name : ""),
                      expect);
    GPTQD_INPUT_CHECK(t.begin == expect,
                      "{}: gap of {} bytes before tensor {} at data_offsets [{}, {}] (previous "
                      "tensor ends at {})",
                      path, t.begin - expect, quote_name(t.name), t.begin, t.end, expect);
    GPTQD_INPUT_CHECK(t.end <= data_len,
                      "{}: tensor {} at data_offsets [{}, {}] runs past the end of the data "
                      "section ({} bytes; file truncated?)",
                      path, quote_name(t.name), t.begin, t.end, data_len);
    expect = t.end;
    prev = &t;
  }
  GPTQD_INPUT_CHECK(expect == data_len,
                    "{}: {} trailing bytes after the last tensor (data section is {} bytes, "
                    "tensors cover {})",
                    path, data_len - expect, data_len, expect);

  f.by_name_.reserve(f.tensors_.size());
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.by_name_.emplace(f.tensors_[i].name, i);
  return f;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* SafetensorsFile::data(const TensorInfo& t) const {
  GPTQD_CHECK(t.begin <= t.end && t.end <= map_.size() - data_offset_,
              "tensor {} [{}, {}] is not inside {}", t.name, t.begin, t.end, path());
  return map_.data() + data_offset_ + t.begin;
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name) const {
  const TensorInfo* t = find(name);
  GPTQD_INPUT_CHECK(t != nullptr, "{}: no tensor {}", path(), quote_name(name));
  std::vector<float> out(static_cast<size_t>(t->numel()));
  read_f32_into(*t, out.data());
  return out;
}

void SafetensorsFile::read_f32_into(const TensorInfo& t, float* dst) const {
  GPTQD_INPUT_CHECK(t.dtype != DType::BOOL, "{}: tensor {} has dtype BOOL, not convertible to fp32",
                    path(), quote_name(t.name));
  convert_to_f32(t.dtype, data(t), static_cast<size_t>(t.numel()), dst);
}

void SafetensorsFile::read_f32_into(const TensorInfo& t, float* dst,
                                    const ByteVisitor& each) const {
  GPTQD_INPUT_CHECK(t.dtype != DType::BOOL, "{}: tensor {} has dtype BOOL, not convertible to fp32",
                    path(), quote_name(t.name));
  const uint8_t* src = data(t);
  const size_t elem = dtype_size(t.dtype);
  const size_t n = static_cast<size_t>(t.numel());
  const size_t piece = std::max<size_t>(1, kVisitPiece / elem);
  for (size_t i = 0; i < n; i += piece) {
    const size_t k = std::min(piece, n - i);
    convert_to_f32(t.dtype, src + i * elem, k, dst + i);
    each(src + i * elem, k * elem);
  }
}

void write_safetensors(StagedFile& out, const std::vector<TensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string& path = out.path();
  // ordered_json keeps insertion order, so the header lists tensors as laid out.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  std::unordered_set<std::string> names;
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const TensorOut& t : tensors) {
    GPTQD_CHECK(t.name != "__metadata__",
                "write_safetensors {}: tensor name __metadata__ is reserved", path);
    GPTQD_CHECK(names.insert(t.name).second, "write_safetensors {}: duplicate tensor name '{}'",
                path, t.name);
    uint64_t bytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      GPTQD_CHECK(d >= 0, "write_safetensors {}: tensor '{}' has negative dimension {}", path,
                  t.name, d);
      GPTQD_CHECK(!__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes),
                  "write_safetensors {}: tensor '{}' size overflows", path, t.name);
    }
    GPTQD_CHECK(bytes == 0 || t.data != nullptr, "write_safetensors {}: tensor '{}' has no data",
                path, t.name);
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    sizes.push_back(bytes);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len_le[8];
  for (int i = 0; i < 8; ++i) len_le[i] = static_cast<uint8_t>(text.size() >> (8 * i));

  out.write(len_le, 8);
  out.write(text);
  for (size_t i = 0; i < tensors.size(); ++i) out.write(tensors[i].data, sizes[i]);
}

void write_safetensors(const std::string& path, const std::vector<TensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata,
                       const std::string& role) {
  StagedFile out = StagedFile::create(role, path);
  write_safetensors(out, tensors, metadata);
  out.commit();
}

}  // namespace gptqd
