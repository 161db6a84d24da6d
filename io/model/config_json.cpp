#include "io/model/config_json.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "io/model/json_strict.h"
#include "base/check.h"

namespace gptqd {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxJsonFile = 64ull << 20;
constexpr int64_t kMaxConfigDimension = int64_t{1} << 24;

std::string alias_list(std::initializer_list<const char*> keys) {
  std::string s;
  for (const char* k : keys) {
    s += s.empty() ? fmt::format("'{}'", k) : fmt::format(" (or '{}')", k);
  }
  return s;
}

const json* present(const json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

}  // namespace

std::string read_small_file(const std::string& path) {
  // A directory opens with fopen and fails only at fread (EISDIR); a FIFO or /dev/zero would
  // block or never end. Say what the path is instead.
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::exists(st))
    GPTQD_INPUT_CHECK(std::filesystem::is_regular_file(st), "{} is {}, not a regular file", path,
                      std::filesystem::is_directory(st) ? "a directory" : "a special file");
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

std::optional<int64_t> config_int(const json& j, std::initializer_list<const char*> keys,
                                  const std::string& src) {
  std::optional<int64_t> value;
  const char* first = nullptr;
  for (const char* k : keys) {
    const json* v = present(j, k);
    if (!v) continue;
    GPTQD_INPUT_CHECK(v->is_number_integer(), "{}: key '{}' is {} ({}), expected an integer", src,
                      k, json_type_name(*v), v->dump().substr(0, 40));
    GPTQD_INPUT_CHECK(!(v->is_number_unsigned() && v->get<uint64_t>() > INT64_MAX),
                      "{}: key '{}' is too large", src, k);
    const int64_t n = v->get<int64_t>();
    GPTQD_INPUT_CHECK(!value || *value == n, "{}: keys '{}' ({}) and '{}' ({}) disagree", src,
                      first, *value, k, n);
    value = n;
    first = k;
  }
  return value;
}

int64_t config_positive(const json& j, std::initializer_list<const char*> keys,
                        const std::string& src) {
  const std::optional<int64_t> v = config_int(j, keys, src);
  GPTQD_INPUT_CHECK(v.has_value(), "{}: missing key {}", src, alias_list(keys));
  GPTQD_INPUT_CHECK(*v > 0, "{}: key '{}' is {}, expected a positive integer", src, *keys.begin(),
                    *v);
  // Far above any released model (vocab 256k, hidden 16k, 126 layers) and low enough that every
  // product of two dimensions, times the bytes of an element, stays exact in int64.
  GPTQD_INPUT_CHECK(*v <= kMaxConfigDimension,
                    "{}: key '{}' is {}, more than gptqd supports ({}); the file is damaged", src,
                    *keys.begin(), *v, kMaxConfigDimension);
  return *v;
}

int64_t config_optional_int(const json& j, const char* key, int64_t dflt, const std::string& src) {
  const std::optional<int64_t> v = config_int(j, {key}, src);
  return v ? *v : dflt;
}

double config_positive_number(const json& j, const char* key, double dflt, const std::string& src) {
  const json* v = present(j, key);
  if (!v) return dflt;
  GPTQD_INPUT_CHECK(v->is_number(), "{}: key '{}' is {}, expected a number", src, key,
                    json_type_name(*v));
  const double x = v->get<double>();
  GPTQD_INPUT_CHECK(x > 0 && x < 1e300, "{}: key '{}' is {}, expected a positive number", src, key,
                    x);
  return x;
}

bool config_bool(const json& j, const char* key, bool dflt, const std::string& src) {
  const json* v = present(j, key);
  if (!v) return dflt;
  GPTQD_INPUT_CHECK(v->is_boolean(), "{}: key '{}' is {}, expected a boolean", src, key,
                    json_type_name(*v));
  return v->get<bool>();
}

std::string config_string(const json& j, const char* key, const std::string& dflt,
                          const std::string& src) {
  const json* v = present(j, key);
  if (!v) return dflt;
  GPTQD_INPUT_CHECK(v->is_string(), "{}: key '{}' is {}, expected a string", src, key,
                    json_type_name(*v));
  return v->get<std::string>();
}

int64_t config_token_id(const json& j, const char* key, int64_t dflt, const std::string& src) {
  const json* v = present(j, key);
  if (!v) return dflt;
  if (v->is_array()) {
    GPTQD_INPUT_CHECK(!v->empty() && (*v)[0].is_number_integer(),
                      "{}: key '{}' is a list, expected integers in it", src, key);
    return (*v)[0].get<int64_t>();
  }
  return config_optional_int(j, key, dflt, src);
}

}  // namespace gptqd
