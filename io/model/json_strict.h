// JSON parsing for model files that must not be silently misread: nlohmann keeps
// the last of duplicate object keys without a word, which would let a hostile or
// corrupt header alias two tensors. These helpers reject that.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace gptqd {

// Nesting limit of parse_json_strict: model files nest a few levels.
constexpr size_t kMaxJsonStrictDepth = 64;

// Parses `n` bytes at `text` as one JSON value (surrounding whitespace allowed).
// Throws InputError "<source>: ..." naming the position if the text is not valid
// JSON, the key and its enclosing object if any object repeats a key, the key
// path and the number for a number beyond double's range (1e400), or the path
// when arrays and objects nest deeper than kMaxJsonStrictDepth.
nlohmann::json parse_json_strict(const char* text, size_t n, const std::string& source);
inline nlohmann::json parse_json_strict(const std::string& text, const std::string& source) {
  return parse_json_strict(text.data(), text.size(), source);
}

// `s` made safe for a one-line error message: quoted, control characters
// escaped, and cut to `max_len` characters with "..." if longer.
std::string quote_name(std::string_view s, size_t max_len = 120);

// The JSON type of `v` in words ("string", "array", ...), for error messages.
const char* json_type_name(const nlohmann::json& v);

}  // namespace gptqd
