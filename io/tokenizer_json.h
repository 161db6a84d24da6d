// Parsing and validating tokenizer.json into the parts io/tokenizer.cpp assembles. Internal.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/added_tokens.h"
#include "io/bpe.h"
#include "io/pretokenize.h"

namespace gptqd::tok {

struct TokenizerSpec {
  std::vector<AddedToken> added_tokens;
  std::vector<SplitRule> splits;  // applied in order before ByteLevel
  bool add_prefix_space = false;  // ByteLevel's
  bool use_regex = false;         // ByteLevel's: GPT-2's regex
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  BpeOptions bpe;
};

// Reads path. InputError (message starts with path) for an unreadable file, invalid JSON, a
// wrong-typed key, or any component gptqd does not implement (named by its "type").
TokenizerSpec parse_tokenizer_json(const std::string& path);

}  // namespace gptqd::tok
