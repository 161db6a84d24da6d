// Reading config.json values with one clear error per bad key: the helpers every model
// family's config reader (io/model/families/) uses, so each spelling rule lives in one place.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace gptqd {

// The whole file (at most 64 MiB: config.json and the index are a few kB). InputError naming
// the path when it cannot be read or is too large.
std::string read_small_file(const std::string& path);

// The integer under the first present key of `keys`; every present spelling must agree.
// Absent: nullopt. Errors name the source and the key.
std::optional<int64_t> config_int(const nlohmann::json& j, std::initializer_list<const char*> keys,
                                  const std::string& src);
// Like config_int but required, > 0 and at most 2^24 (a model dimension: every product of two,
// in bytes, is exact in int64).
int64_t config_positive(const nlohmann::json& j, std::initializer_list<const char*> keys,
                        const std::string& src);
// An integer that may be absent or null (keeps `dflt`).
int64_t config_optional_int(const nlohmann::json& j, const char* key, int64_t dflt,
                            const std::string& src);
// A number > 0 that may be absent or null (keeps `dflt`).
double config_positive_number(const nlohmann::json& j, const char* key, double dflt,
                              const std::string& src);
bool config_bool(const nlohmann::json& j, const char* key, bool dflt, const std::string& src);
// A string that may be absent or null (keeps `dflt`).
std::string config_string(const nlohmann::json& j, const char* key, const std::string& dflt,
                          const std::string& src);
// A token id: an integer, null (keeps `dflt`), or a list of integers (its first).
int64_t config_token_id(const nlohmann::json& j, const char* key, int64_t dflt,
                        const std::string& src);

}  // namespace gptqd
