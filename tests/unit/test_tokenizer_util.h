// Helpers shared by the tokenizer tests (test_tokenizer*.cpp).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace gptqd::tok_test {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

inline constexpr uint64_t kFnvOffset = 0xCBF29CE484222325ull;

// FNV-1a 64 over bytes, continuing from h.
inline uint64_t fnv1a64_bytes(const std::string& bytes, uint64_t h = kFnvOffset) {
  for (unsigned char b : bytes) {
    h ^= b;
    h *= 0x100000001B3ull;
  }
  return h;
}

// FNV-1a 64 over the ids as little-endian int32, continuing from h.
inline uint64_t fnv1a64(const std::vector<int32_t>& ids, uint64_t h = kFnvOffset) {
  for (int32_t id : ids) {
    const auto u = static_cast<uint32_t>(id);
    for (int b = 0; b < 4; ++b) {
      h ^= (u >> (8 * b)) & 0xFF;
      h *= 0x100000001B3ull;
    }
  }
  return h;
}

// Python's str.split("\n").
inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  for (size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', begin)) {
    lines.push_back(text.substr(begin, nl - begin));
    begin = nl + 1;
  }
  lines.push_back(text.substr(begin));
  return lines;
}

template <typename T>
T read_le(const std::string& buf, size_t* pos) {
  T v;
  std::memcpy(&v, buf.data() + *pos, sizeof(T));  // the fixture and x86/ARM are little-endian
  *pos += sizeof(T);
  return v;
}

}  // namespace gptqd::tok_test
