// HF tokenizer.json for BLOOM-style byte-level BPE tokenizers, in C++ (no Python, no Rust).
// Reproduces HF tokenizers' encode(text, add_special_tokens=False) id for id and its decode.
//
// Supported (anything else is an InputError naming the file and the unsupported type or key):
//   normalizer     null
//   pre_tokenizer  ByteLevel, or a Sequence of Split steps ending in ByteLevel. Split: pattern
//                  {"Regex": BLOOM's " ?[^(\s|[.,!?…。，、।۔،])]+"} or {"String": literal},
//                  any behavior, invert true/false. ByteLevel: add_prefix_space true/false,
//                  use_regex true (GPT-2's regex) or false.
//   model          BPE; merges as "a b" strings or [a, b] pairs; dropout null or 0;
//                  unk_token/fuse_unk; ignore_merges; no byte_fallback, no subword affixes.
//   decoder        ByteLevel
//   added_tokens   matched in the raw text before pre-tokenization (lstrip/rstrip/normalized
//                  honored; single_word rejected)
// Ignored: post_processor (encode adds no BOS/EOS), truncation and padding (as transformers'
// tokenizer call does unless asked), version.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gptqd {

class Tokenizer {  // move-only
 public:
  // Reads and validates a tokenizer.json. InputError for a missing or malformed file and for
  // anything unsupported; the message names the file and the offending type or key.
  static Tokenizer load(const std::string& tokenizer_json_path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;
  ~Tokenizer();

  // The ids of utf8 (valid UTF-8, else InputError with the byte offset), no BOS/EOS added.
  // Added tokens such as "<s>" written in the text become their ids. Thread-safe.
  std::vector<int32_t> encode(const std::string& utf8) const;

  // The text of ids, special tokens included (transformers' skip_special_tokens=False). Byte
  // sequences that are not valid UTF-8 become U+FFFD as in HF. InputError for an id that is not
  // in the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;

  // Number of distinct tokens: the model's vocabulary plus added tokens that are not in it.
  int64_t vocab_size() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gptqd
