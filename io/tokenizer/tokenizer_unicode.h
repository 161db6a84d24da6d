// UTF-8 and the few Unicode properties the tokenizer needs, with the exact semantics of the
// HF tokenizers (Rust) code it reproduces. Internal to io/ (tokenizer*.cpp, bpe, pre-tokenizers).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace gptqd::tok {

// Byte offset of the first byte that does not start a valid UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF are invalid, as in Rust's str), or npos if valid.
size_t find_invalid_utf8(std::string_view s);

// Decodes the code point starting at s[pos] and advances pos past it. Needs: s is valid UTF-8
// (checked by find_invalid_utf8) and pos < s.size() is at a code point boundary.
char32_t next_code_point(std::string_view s, size_t& pos);

// Appends the UTF-8 encoding of cp (cp <= U+10FFFF, not a surrogate).
void append_utf8(std::string& out, char32_t cp);

// Bytes to text the way Rust's String::from_utf8_lossy does: every maximal prefix of an
// invalid sequence becomes one U+FFFD (the Unicode "substitution of maximal subparts").
std::string utf8_lossy(std::string_view bytes);

// Unicode White_Space (what both Oniguruma's and Rust regex's \s match).
bool is_white_space(char32_t cp);

// General categories L* and N* (Unicode 14, the version of the Oniguruma inside HF tokenizers
// 0.15); used by GPT-2's pre-tokenizer regex.
bool is_letter(char32_t cp);
bool is_number(char32_t cp);

}  // namespace gptqd::tok
