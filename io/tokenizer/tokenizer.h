// HF tokenizer.json in C++ (no Python, no Rust): the BPE forms of the supported families.
// Reproduces HF tokenizers' encode(text, add_special_tokens=False|True) id for id, and decode.
//
// Supported (anything else is an InputError naming the file and the unsupported type or key):
//   normalizer     null, or NFC, Prepend, Replace (of a literal String), in a Sequence
//   pre_tokenizer  a Sequence of Split and Digits steps, then ByteLevel or Metaspace as the last
//                  step; null when a normalizer puts in the "▁" (SentencePiece-converted files).
//                  Split: pattern {"Regex": BLOOM's, Llama 3's or Qwen2's regex, verbatim} or
//                  {"String": literal}, any behavior, invert true/false. Digits:
//                  individual_digits. ByteLevel: add_prefix_space, use_regex (GPT-2's regex).
//                  Metaspace: replacement, prepend_scheme always/first/never (or the older
//                  add_prefix_space), split.
//   model          BPE; merges as "a b" strings or [a, b] pairs; dropout null or 0;
//                  unk_token/fuse_unk; byte_fallback ("<0xAB>" tokens); ignore_merges; no
//                  subword affixes.
//   post_processor null, ByteLevel, TemplateProcessing (its "single" template), RobertaProcessing,
//                  BertProcessing, or a Sequence of them: the BOS/EOS of encode_with_specials.
//   decoder        ByteLevel, Metaspace, Replace (literal), ByteFallback, Fuse, Strip, Sequence
//   added_tokens   matched in the raw text before pre-tokenization (lstrip/rstrip/normalized
//                  honored; single_word rejected)
// The forms this covers, each checked against HF in tests/unit/test_tokenizer_forms.cpp: BLOOM;
// GPT-2 / OPT (ByteLevel with its regex; OPT's template prepends "</s>"); SmolLM2 (Digits, then
// ByteLevel); Llama 3 (Llama 3's Split, ByteLevel without regex, ignore_merges, BOS from the
// template); Qwen2/2.5/3 (NFC, Qwen2's Split, ByteLevel); Llama 2 / Mistral v0.1 (normalizer
// Prepend("▁") + Replace(" ", "▁") or a Metaspace pre-tokenizer; byte_fallback, fuse_unk; "<s>"
// from the template).
// Ignored: truncation and padding (as transformers' tokenizer call does unless asked), version.
// Limits: the file at most 64 MiB, nested at most 64 deep, at most 2^22 vocabulary entries.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gptqd {

class Tokenizer {  // move-only
 public:
  // Reads and validates a tokenizer.json. InputError (one line) for a missing or malformed file
  // and for anything unsupported; the message names the file and the offending type or key.
  static Tokenizer load(const std::string& tokenizer_json_path);

  // The same from the file's text; `name` stands for the file in messages.
  static Tokenizer from_json_text(const std::string& json_text, const std::string& name);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;
  ~Tokenizer();

  // The ids of utf8, no BOS/EOS added: HF's encode(text, add_special_tokens=False). Added tokens
  // such as "<s>" written in the text become their ids. Thread-safe. Text that is not valid UTF-8
  // is an InputError naming `source` (what the text is, e.g. "calibration.text 'a.txt'"; "text to
  // tokenize" when empty), the bad byte, its offset, line and column.
  std::vector<int32_t> encode(const std::string& utf8, const std::string& source = "") const;

  // encode() with the post-processor's special tokens around the ids: HF's
  // encode(text, add_special_tokens=True), what transformers' tokenizer(text) returns (a BOS for
  // Llama 2/3, Mistral and OPT; nothing for BLOOM, GPT-2, SmolLM2, Qwen2). Thread-safe.
  std::vector<int32_t> encode_with_specials(const std::string& utf8,
                                            const std::string& source = "") const;

  // In words, what encode_with_specials adds, for a log or a command's header:
  // "BOS <|begin_of_text|> (128000) prepended", "BOS <s> (0) prepended, EOS </s> (2) appended",
  // or "no BOS/EOS added".
  std::string special_tokens_summary() const;

  // The text of ids, special tokens included (transformers' skip_special_tokens=False), through
  // the file's decoder. Byte sequences that are not valid UTF-8 become U+FFFD as in HF.
  // InputError for an id that is not in the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;

  // Number of distinct tokens: the model's vocabulary plus added tokens that are not in it.
  int64_t vocab_size() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gptqd
