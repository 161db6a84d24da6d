// HF tokenizers' Split pre-tokenizer for the patterns gptqd supports: BLOOM's, Llama 3's and
// Qwen2's regexes (written out by hand; Oniguruma is not a dependency), literal strings, and the
// Digits pre-tokenizer (a Split on each numeric character).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gptqd::tok {

// BLOOM's Split pattern, as it appears in its tokenizer.json (an Oniguruma regex). Read with
// Oniguruma's rules, "[^(\s|[.,!?…。，、।۔،])]" is ONE negated class holding '(', \s, '|', the
// nested class [.,!?…。，、।۔،] and ')': '[' opens the nested class, so '[' and ']' are not
// excluded. A match is an optional ' ' then a maximal run of characters outside that class.
inline constexpr std::string_view kBloomSplitRegex = " ?[^(\\s|[.,!?…。，、।۔،])]+";

// True for the characters BLOOM's pattern excludes from a run: White_Space, ( ) | and the
// punctuation . , ! ? … 。 ， 、 । ۔ ،.
bool bloom_split_excluded(char32_t cp);

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

enum class SplitPattern {
  kLiteral,  // SplitRule::literal
  kBloom,    // kBloomSplitRegex
  kLlama3,   // kLlama3SplitRegex (io/tokenizer/tokenizer_regex.h)
  kQwen2,    // kQwen2SplitRegex
  kNumeric,  // each numeric character (Rust's char::is_numeric: N*), as Digits splits
};

struct SplitRule {
  SplitPattern pattern = SplitPattern::kLiteral;
  std::string literal;  // non-empty for kLiteral
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;  // the pattern's matches are the kept parts and its gaps the delimiters
};

// Splits piece (valid UTF-8) by rule and appends the non-empty results in order, exactly as HF's
// NormalizedString::split(pattern, behavior) followed by PreTokenizedString's empty filter.
void apply_split(const SplitRule& rule, std::string_view piece, std::vector<std::string_view>& out);

}  // namespace gptqd::tok
