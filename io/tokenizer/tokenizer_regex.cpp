// Llama 3 / Qwen2 Split regex. The alternatives, in order:
//   1 (?i:'s|'t|'re|'ve|'m|'ll|'d)  2 [^\r\n\p{L}\p{N}]?\p{L}+  3 \p{N}{1,max_digits}
//   4  ?[^\s\p{L}\p{N}]+[\r\n]*     5 \s*[\r\n]+              6 \s+(?!\S)   7 \s+
// \s is Unicode White_Space and \p{L}, \p{N} the general categories, as in the GPT-2 regex.
#include "io/tokenizer/tokenizer_regex.h"

#include "io/tokenizer/tokenizer_unicode.h"

namespace gptqd::tok {
namespace {

enum class Cls { kLetter, kNumber, kSpace, kOther };

Cls classify(char32_t cp) {
  if (is_letter(cp)) return Cls::kLetter;
  if (is_number(cp)) return Cls::kNumber;
  if (is_white_space(cp)) return Cls::kSpace;
  return Cls::kOther;
}

// The code point at pos (pos < size) and the position after it.
char32_t peek(std::string_view t, size_t pos, size_t* after) {
  *after = pos;
  return next_code_point(t, *after);
}

size_t run_end(std::string_view t, size_t pos, Cls cls) {
  while (pos < t.size()) {
    size_t after = 0;
    if (classify(peek(t, pos, &after)) != cls) break;
    pos = after;
  }
  return pos;
}

// Case-insensitive match of one contraction letter (ASCII), Unicode simple case folding: only
// U+017F LATIN SMALL LETTER LONG S folds onto an ASCII letter of these (s).
bool letter_is(char32_t cp, char lower) {
  if (cp == static_cast<char32_t>(lower) || cp == static_cast<char32_t>(lower - 'a' + 'A')) {
    return true;
  }
  return lower == 's' && cp == 0x17F;
}

size_t contraction_end(std::string_view t, size_t pos) {
  if (t[pos] != '\'' || pos + 1 >= t.size()) return pos;
  size_t p1 = 0;
  const char32_t c1 = peek(t, pos + 1, &p1);
  for (char c : {'s', 't'}) {
    if (letter_is(c1, c)) return p1;
  }
  // 're 've before 'm, 'll before 'd: alternatives are ordered but none is a prefix of another.
  if (p1 < t.size()) {
    size_t p2 = 0;
    const char32_t c2 = peek(t, p1, &p2);
    if ((letter_is(c1, 'r') && letter_is(c2, 'e')) || (letter_is(c1, 'v') && letter_is(c2, 'e')) ||
        (letter_is(c1, 'l') && letter_is(c2, 'l'))) {
      return p2;
    }
  }
  if (letter_is(c1, 'm') || letter_is(c1, 'd')) return p1;
  return pos;
}

bool is_cr_lf(char32_t cp) { return cp == '\r' || cp == '\n'; }

}  // namespace

size_t llama3_match_end(std::string_view t, size_t pos, int max_digits) {
  if (const size_t end = contraction_end(t, pos); end > pos) return end;
  size_t p1 = 0;
  const char32_t c0 = peek(t, pos, &p1);
  const Cls cls0 = classify(c0);
  // 2: an optional non-letter/number/CR/LF character, then letters.
  if (cls0 == Cls::kLetter) return run_end(t, p1, Cls::kLetter);
  if (cls0 != Cls::kNumber && !is_cr_lf(c0) && p1 < t.size()) {
    size_t p2 = 0;
    if (classify(peek(t, p1, &p2)) == Cls::kLetter) return run_end(t, p2, Cls::kLetter);
  }
  // 3: one to max_digits numbers.
  if (cls0 == Cls::kNumber) {
    size_t end = p1;
    for (int n = 1; n < max_digits && end < t.size(); ++n) {
      size_t after = 0;
      if (classify(peek(t, end, &after)) != Cls::kNumber) break;
      end = after;
    }
    return end;
  }
  // 4: an optional space, "other" characters, then CR/LF characters.
  size_t body = pos;
  if (c0 == ' ' && p1 < t.size()) {
    size_t p2 = 0;
    if (classify(peek(t, p1, &p2)) == Cls::kOther) body = p1;
  }
  if (body > pos || cls0 == Cls::kOther) {
    size_t end = run_end(t, body, Cls::kOther);
    while (end < t.size() && is_cr_lf(static_cast<unsigned char>(t[end]))) ++end;
    return end;
  }
  // c0 is white space. 5: the run up to and including its last CR/LF, if it has one.
  size_t last_cr_lf = std::string_view::npos, last_start = pos, p = pos;
  while (p < t.size()) {
    size_t after = 0;
    const char32_t c = peek(t, p, &after);
    if (!is_white_space(c)) break;
    if (is_cr_lf(c)) last_cr_lf = p;
    last_start = p;
    p = after;
  }
  const size_t run = p;
  if (last_cr_lf != std::string_view::npos) return last_cr_lf + 1;
  // 6: the run, less its last character when a non-space follows (if anything is left); 7: all.
  if (run < t.size() && last_start > pos) return last_start;
  return run;
}

}  // namespace gptqd::tok
