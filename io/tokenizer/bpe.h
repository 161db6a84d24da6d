// The BPE model of HF tokenizers (models/bpe): a word's characters become vocabulary ids, then
// merges apply lowest rank first (leftmost on ties) until none applies. Words are byte-level
// strings (every character is one byte's character) or, for SentencePiece-converted files, text
// with "▁" for spaces whose unknown characters fall back to byte tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gptqd::tok {

struct BpeOptions {
  std::optional<std::string> unk_token;  // characters outside the vocabulary become this...
  bool fuse_unk = false;                 // ...one per run of them when fused
  bool ignore_merges = false;            // a word that is itself a token is not merged
  bool byte_fallback = false;  // a character outside the vocabulary becomes its bytes' "<0xAB>"
                               // tokens when all are in the vocabulary (else unk, as above)
};

class BpeModel {
 public:
  // merges: pairs in rank order. Throws InputError prefixed with `where` (the file) when a merge
  // names a token that is not in the vocabulary or whose concatenation is not, or the unk token
  // is missing from the vocabulary.
  BpeModel(std::unordered_map<std::string, int32_t> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
           const std::string& where);
  ~BpeModel();
  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;

  // Appends the ids of one pre-tokenized word (valid UTF-8). Characters outside the vocabulary
  // with no unk_token are dropped, as HF does. Results are cached per word; thread-safe.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(const std::string& token) const;
  const std::string* id_to_token(int32_t id) const;  // nullptr for an id not in the vocabulary
  int64_t size() const;                              // number of vocabulary entries

 private:
  std::vector<int32_t> merge_word(std::string_view word) const;

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gptqd::tok
