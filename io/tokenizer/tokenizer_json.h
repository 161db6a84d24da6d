// Parsing and validating tokenizer.json into the parts io/tokenizer/tokenizer.cpp assembles. Internal.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/tokenizer/added_tokens.h"
#include "io/tokenizer/bpe.h"
#include "io/tokenizer/pretokenize.h"
#include "io/tokenizer/tokenizer_decoder.h"
#include "io/tokenizer/tokenizer_normalizer.h"
#include "io/tokenizer/tokenizer_post.h"

namespace gptqd::tok {

// Limits that keep a hostile file from taking unbounded memory or stack. The largest released
// tokenizer.json of a supported family (Llama 3) is about 9 MB with 128k tokens.
inline constexpr int64_t kMaxTokenizerJsonBytes = 64ll << 20;
inline constexpr size_t kMaxJsonDepth = 64;
inline constexpr size_t kMaxVocabSize = 1u << 22;

// The pre-tokenizer's last step, which turns pieces into the model's alphabet.
enum class FinalPreTokenizer {
  kNone,       // pieces go to the model as they are (SentencePiece files with a normalizer)
  kByteLevel,  // GPT-2's byte-to-character map (add_prefix_space, use_regex below)
  kMetaspace,  // spaces become the replacement character (metaspace below)
};

struct MetaspaceOptions {
  std::string replacement = "\xE2\x96\x81";  // U+2581 "▁", one character
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;
  bool split = true;  // split before each replacement character (MergedWithNext)
};

struct TokenizerSpec {
  std::vector<NormalizerStep> normalizer;
  std::vector<AddedToken> added_tokens;
  std::vector<SplitRule> splits;  // Split and Digits steps, applied in order before `final_step`
  FinalPreTokenizer final_step = FinalPreTokenizer::kNone;
  bool add_prefix_space = false;  // ByteLevel's
  bool use_regex = false;         // ByteLevel's: GPT-2's regex
  MetaspaceOptions metaspace;
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  BpeOptions bpe;
  PostProcessor post;
  std::vector<DecoderStep> decoder;
};

// Reads path. InputError (message starts with path, one line) for an unreadable, oversized or
// too deeply nested file, invalid JSON, a wrong-typed key, a vocabulary over kMaxVocabSize, or
// any component gptqd does not implement (named by its "type").
TokenizerSpec parse_tokenizer_json(const std::string& path);

// The same from the file's text; `name` stands for the file in messages.
TokenizerSpec parse_tokenizer_json_text(const std::string& text, const std::string& name);

}  // namespace gptqd::tok
