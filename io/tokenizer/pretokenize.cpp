// Split pre-tokenizer: find the pattern's matches, then group matches and gaps by behavior.
#include "io/tokenizer/pretokenize.h"

#include <algorithm>

#include "io/tokenizer/tokenizer_regex.h"
#include "io/tokenizer/tokenizer_unicode.h"

namespace gptqd::tok {
namespace {

struct Span {
  size_t begin, end;
  bool is_match;
};

// Matches of BLOOM's pattern: every maximal run of non-excluded characters, with the ' ' just
// before it when there is one (a space is excluded itself, so no earlier match can hold it).
void bloom_matches(std::string_view s, std::vector<Span>& spans) {
  size_t pos = 0, gap_begin = 0;
  while (pos < s.size()) {
    size_t next = pos;
    if (bloom_split_excluded(next_code_point(s, next))) {
      pos = next;
      continue;
    }
    size_t begin = pos;
    if (begin > gap_begin && s[begin - 1] == ' ') --begin;
    size_t end = next;
    while (end < s.size()) {
      size_t after = end;
      if (bloom_split_excluded(next_code_point(s, after))) break;
      end = after;
    }
    if (begin > gap_begin) spans.push_back({gap_begin, begin, false});
    spans.push_back({begin, end, true});
    gap_begin = pos = end;
  }
  if (gap_begin < s.size()) spans.push_back({gap_begin, s.size(), false});
}

// Non-overlapping leftmost occurrences of a literal, scanning on from the end of each.
void literal_matches(std::string_view s, std::string_view lit, std::vector<Span>& spans) {
  size_t gap_begin = 0;
  for (size_t at = s.find(lit); at != std::string_view::npos; at = s.find(lit, gap_begin)) {
    if (at > gap_begin) spans.push_back({gap_begin, at, false});
    spans.push_back({at, at + lit.size(), true});
    gap_begin = at + lit.size();
  }
  if (gap_begin < s.size()) spans.push_back({gap_begin, s.size(), false});
}

// Matches of the Llama 3 / Qwen2 regex: they tile the piece.
void tiling_matches(std::string_view s, int max_digits, std::vector<Span>& spans) {
  for (size_t pos = 0; pos < s.size();) {
    const size_t end = llama3_match_end(s, pos, max_digits);
    spans.push_back({pos, end, true});
    pos = end;
  }
}

// Each numeric character is a match of its own (a char pattern in HF's NormalizedString::split).
void numeric_matches(std::string_view s, std::vector<Span>& spans) {
  size_t pos = 0, gap_begin = 0;
  while (pos < s.size()) {
    size_t next = pos;
    if (is_number(next_code_point(s, next))) {
      if (pos > gap_begin) spans.push_back({gap_begin, pos, false});
      spans.push_back({pos, next, true});
      gap_begin = next;
    }
    pos = next;
  }
  if (gap_begin < s.size()) spans.push_back({gap_begin, s.size(), false});
}

}  // namespace

bool bloom_split_excluded(char32_t cp) {
  switch (cp) {
    case '(':
    case ')':
    case '|':
    case '.':
    case ',':
    case '!':
    case '?':
    case 0x2026:  // …
    case 0x3002:  // 。
    case 0xFF0C:  // ，
    case 0x3001:  // 、
    case 0x0964:  // ।
    case 0x06D4:  // ۔
    case 0x060C:  // ،
      return true;
    default:
      return is_white_space(cp);
  }
}

void apply_split(const SplitRule& rule, std::string_view piece,
                 std::vector<std::string_view>& out) {
  if (piece.empty()) return;
  std::vector<Span> spans;
  switch (rule.pattern) {
    case SplitPattern::kLiteral:
      literal_matches(piece, rule.literal, spans);
      break;
    case SplitPattern::kBloom:
      bloom_matches(piece, spans);
      break;
    case SplitPattern::kLlama3:
      tiling_matches(piece, 3, spans);
      break;
    case SplitPattern::kQwen2:
      tiling_matches(piece, 1, spans);
      break;
    case SplitPattern::kNumeric:
      numeric_matches(piece, spans);
      break;
  }
  if (rule.invert) {
    for (auto& s : spans) s.is_match = !s.is_match;
  }

  // (begin, end, removed) per HF's behaviors; see NormalizedString::split.
  std::vector<Span> parts;  // is_match here means "remove"
  bool previous_match = false;
  switch (rule.behavior) {
    case SplitBehavior::kRemoved:
      parts = spans;
      break;
    case SplitBehavior::kIsolated:
      for (const auto& s : spans) parts.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::kContiguous:
      for (const auto& s : spans) {
        if (s.is_match == previous_match && !parts.empty()) {
          parts.back().end = s.end;
        } else {
          parts.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& s : spans) {
        if (s.is_match && !previous_match && !parts.empty()) {
          parts.back().end = s.end;
        } else {
          parts.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !parts.empty()) {
          parts.back().begin = it->begin;
        } else {
          parts.push_back({it->begin, it->end, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(parts.begin(), parts.end());
      break;
  }
  for (const auto& p : parts) {
    if (!p.is_match && p.end > p.begin) out.push_back(piece.substr(p.begin, p.end - p.begin));
  }
}

}  // namespace gptqd::tok
