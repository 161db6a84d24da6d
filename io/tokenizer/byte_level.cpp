// Byte-level alphabet and GPT-2's pre-tokenizer regex, written out by hand.
#include "io/tokenizer/byte_level.h"

#include <array>
#include <unordered_map>

#include "io/tokenizer/tokenizer_unicode.h"

namespace gptqd::tok {
namespace {

struct ByteTables {
  std::array<std::string, 256> to_char;        // byte -> UTF-8 of its character
  std::unordered_map<char32_t, char> to_byte;  // character -> byte
};

const ByteTables& tables() {
  static const ByteTables t = [] {
    ByteTables r;
    char32_t next_extra = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t cp = printable ? static_cast<char32_t>(b) : next_extra++;
      append_utf8(r.to_char[b], cp);
      r.to_byte.emplace(cp, static_cast<char>(b));
    }
    return r;
  }();
  return t;
}

bool is_contraction_letter(char c) { return c == 's' || c == 't' || c == 'm' || c == 'd'; }

// Length of the contraction ('s 't 're 've 'm 'll 'd) at text[pos], or 0.
size_t contraction_length(std::string_view text, size_t pos) {
  if (text[pos] != '\'' || pos + 1 >= text.size()) return 0;
  if (is_contraction_letter(text[pos + 1])) return 2;
  if (pos + 2 >= text.size()) return 0;
  const std::string_view two = text.substr(pos + 1, 2);
  return two == "re" || two == "ve" || two == "ll" ? 3 : 0;
}

enum class CharClass { kLetter, kNumber, kSpace, kOther };

CharClass classify(char32_t cp) {
  if (is_letter(cp)) return CharClass::kLetter;
  if (is_number(cp)) return CharClass::kNumber;
  if (is_white_space(cp)) return CharClass::kSpace;
  return CharClass::kOther;
}

// End of the run of characters of class cls starting at pos (pos itself if none).
size_t run_end(std::string_view text, size_t pos, CharClass cls) {
  while (pos < text.size()) {
    size_t next = pos;
    if (classify(next_code_point(text, next)) != cls) break;
    pos = next;
  }
  return pos;
}

}  // namespace

std::string byte_level_char(unsigned char byte) { return tables().to_char[byte]; }

void byte_level_encode(std::string_view raw, std::string& out) {
  const auto& t = tables().to_char;
  for (unsigned char b : raw) out.append(t[b]);
}

void byte_level_decode(std::string_view token, std::string& out) {
  const auto& to_byte = tables().to_byte;
  const size_t start = out.size();
  size_t pos = 0;
  while (pos < token.size()) {
    const auto it = to_byte.find(next_code_point(token, pos));
    if (it == to_byte.end()) {
      out.resize(start);
      out.append(token);
      return;
    }
    out.push_back(it->second);
  }
}

void gpt2_split(std::string_view text, std::vector<std::string_view>& pieces) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = pos + contraction_length(text, pos);
    if (end == pos) {
      // " ?X+" for X in letters, numbers, others: an optional space, then a run of one class.
      size_t body = text[pos] == ' ' ? pos + 1 : pos;
      CharClass cls = CharClass::kSpace;
      if (body < text.size()) {
        size_t next = body;
        cls = classify(next_code_point(text, next));
      }
      if (cls != CharClass::kSpace) {
        end = run_end(text, body, cls);
      } else {
        // \s+(?!\S) then \s+: a whitespace run, less its last character when a non-space
        // follows and the run is longer than one character.
        const size_t run = run_end(text, pos, CharClass::kSpace);
        end = run;
        if (run < text.size()) {
          size_t last = pos, p = pos;
          while (p < run) {
            last = p;
            next_code_point(text, p);
          }
          if (last > pos) end = last;
        }
      }
    }
    pieces.push_back(text.substr(pos, end - pos));
    pos = end;
  }
}

}  // namespace gptqd::tok
