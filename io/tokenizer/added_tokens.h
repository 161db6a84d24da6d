// Added tokens (tokenizer.json "added_tokens"): strings matched in the raw text before any
// pre-tokenization and encoded as their own id, as HF tokenizers' AddedVocabulary does.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gptqd::tok {

struct AddedToken {
  int32_t id = 0;
  std::string content;  // non-empty
  bool lstrip = false;  // the match takes the whitespace before it
  bool rstrip = false;  // the match takes the whitespace after it
  bool normalized = false;
  bool special = false;
};

// A piece of text: either an added token's match (id >= 0) or text still to pre-tokenize.
struct Segment {
  std::string_view text;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  // Splits text into segments. HF matches the tokens with normalized == false first, then, in
  // the text left between those, the ones with normalized == true (with no normalizer the two
  // passes differ only in that order). Each pass takes the leftmost, then longest, match and
  // continues after it. Empty segments are dropped.
  std::vector<Segment> split(std::string_view text) const;

  // The two passes of split on their own, for a tokenizer with a normalizer: split_raw on the
  // raw text, then split_normalized on each normalized piece between the raw matches. Empty
  // segments are dropped.
  std::vector<Segment> split_raw(std::string_view text) const;
  std::vector<Segment> split_normalized(std::string_view text) const;

 private:
  // One pass's tokens (indices into tokens_), by first byte, longest first.
  struct Pass {
    std::array<std::vector<uint32_t>, 256> by_first_byte;
    bool empty = true;
  };
  // The match that starts first at or after `from`, the longest of those; nullptr if none.
  const AddedToken* find_leftmost_longest(const Pass& pass, std::string_view text, size_t from,
                                          size_t* at) const;
  void split_pass(const Pass& pass, std::string_view text, std::vector<Segment>& out) const;

  std::vector<AddedToken> tokens_;
  Pass raw_, normalized_;
};

}  // namespace gptqd::tok
