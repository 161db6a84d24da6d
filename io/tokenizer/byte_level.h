// GPT-2's byte-level alphabet (HF tokenizers' ByteLevel pre-tokenizer and decoder): every byte
// maps to one printable character, so BPE works on any UTF-8 text without an unknown token.
// Printable bytes '!'..'~', 0xA1..0xAC, 0xAE..0xFF map to themselves; the other 68 bytes map in
// order to U+0100, U+0101, ... (space is U+0120 'Ġ', newline U+010A 'Ċ').
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gptqd::tok {

// The UTF-8 encoding of the character that stands for each byte.
std::string byte_level_char(unsigned char byte);

// Appends the byte-level form of raw (each byte replaced by its character's UTF-8).
void byte_level_encode(std::string_view raw, std::string& out);

// Appends the bytes a token stands for. A token containing any character outside the alphabet
// (an added token such as "<s>" is made of alphabet characters; one with, say, CJK text is not)
// contributes its own UTF-8 bytes unchanged, as HF's ByteLevel decoder does.
void byte_level_decode(std::string_view token, std::string& out);

// GPT-2's pre-tokenizer regex, which HF ByteLevel applies when use_regex is true:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Appends the pieces of text (valid UTF-8) in order; together they cover text exactly.
void gpt2_split(std::string_view text, std::vector<std::string_view>& pieces);

}  // namespace gptqd::tok
