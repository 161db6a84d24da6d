// The Split regexes of the Llama 3 and Qwen2 tokenizer.json files, written out by hand with
// Oniguruma's matching rules (Oniguruma is not a dependency). Internal to io/ (pretokenize.cpp).
#pragma once

#include <cstddef>
#include <string_view>

namespace gptqd::tok {

// Llama 3's pattern (its tokenizer.json, verbatim):
inline constexpr std::string_view kLlama3SplitRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Qwen2's (Qwen2, Qwen2.5, Qwen3): the same with single digits.
inline constexpr std::string_view kQwen2SplitRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// End of the match of the Llama 3 / Qwen2 pattern that starts at text[pos], the alternatives
// tried in order with backtracking as Oniguruma does. Every position starts a match (any
// character is a letter, a number, white space or "other"), so repeated calls tile the text.
// max_digits: 3 for Llama 3's \p{N}{1,3}, 1 for Qwen2's \p{N}. Needs: text valid UTF-8,
// pos < text.size() at a code point boundary. Guarantees: the result is > pos.
size_t llama3_match_end(std::string_view text, size_t pos, int max_digits);

}  // namespace gptqd::tok
