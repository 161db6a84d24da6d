// Added-token matching, following HF tokenizers' AddedVocabulary::find_matches line by line.
#include "io/tokenizer/added_tokens.h"

#include <algorithm>

#include "io/tokenizer/tokenizer_unicode.h"

namespace gptqd::tok {
namespace {

// Start of the whitespace run that ends text (text.size() if none): Rust's `\s*$` match start.
// Walks back one code point at a time (a code point starts at a byte that is not 10xxxxxx).
size_t trailing_space_start(std::string_view text) {
  size_t start = text.size();
  while (start > 0) {
    size_t prev = start - 1;
    while (prev > 0 && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
    size_t pos = prev;
    if (!is_white_space(next_code_point(text, pos))) break;
    start = prev;
  }
  return start;
}

// Length of the whitespace run that starts text: Rust's `^\s*` match end.
size_t leading_space_length(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t next = pos;
    if (!is_white_space(next_code_point(text, next))) break;
    pos = next;
  }
  return pos;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    Pass& pass = tokens_[i].normalized ? normalized_ : raw_;
    pass.by_first_byte[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
    pass.empty = false;
  }
  for (Pass* pass : {&raw_, &normalized_}) {
    for (auto& list : pass->by_first_byte) {
      std::stable_sort(list.begin(), list.end(), [this](uint32_t a, uint32_t b) {
        return tokens_[a].content.size() > tokens_[b].content.size();
      });
    }
  }
}

const AddedToken* AddedTokenMatcher::find_leftmost_longest(const Pass& pass, std::string_view text,
                                                           size_t from, size_t* at) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    for (uint32_t i : pass.by_first_byte[static_cast<unsigned char>(text[pos])]) {
      const AddedToken& t = tokens_[i];
      if (text.compare(pos, t.content.size(), t.content) == 0) {
        *at = pos;
        return &t;
      }
    }
  }
  return nullptr;
}

void AddedTokenMatcher::split_pass(const Pass& pass, std::string_view text,
                                   std::vector<Segment>& out) const {
  if (pass.empty) {
    out.push_back({text, -1});
    return;
  }
  // `scan` walks the matches as the Aho-Corasick iterator does (over the original text, on from
  // the end of the previous match); `emitted` is where the segments written so far end, which
  // rstrip can push past `scan`.
  size_t scan = 0, emitted = 0;
  size_t at = 0;
  while (const AddedToken* hit = find_leftmost_longest(pass, text, scan, &at)) {
    size_t start = at, stop = at + hit->content.size();
    scan = stop;
    if (hit->lstrip) start = std::max(trailing_space_start(text.substr(0, start)), emitted);
    if (hit->rstrip) stop += leading_space_length(text.substr(stop));
    if (emitted < start) out.push_back({text.substr(emitted, start - emitted), -1});
    out.push_back({text.substr(start, stop - start), hit->id});
    emitted = stop;
  }
  if (emitted < text.size()) out.push_back({text.substr(emitted), -1});
}

namespace {
void drop_empty(std::vector<Segment>& segs) {
  segs.erase(
      std::remove_if(segs.begin(), segs.end(), [](const Segment& s) { return s.text.empty(); }),
      segs.end());
}
}  // namespace

std::vector<Segment> AddedTokenMatcher::split_raw(std::string_view text) const {
  std::vector<Segment> out;
  split_pass(raw_, text, out);
  drop_empty(out);
  return out;
}

std::vector<Segment> AddedTokenMatcher::split_normalized(std::string_view text) const {
  std::vector<Segment> out;
  split_pass(normalized_, text, out);
  drop_empty(out);
  return out;
}

std::vector<Segment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Segment> first, second;
  split_pass(raw_, text, first);
  for (const auto& seg : first) {
    if (seg.id >= 0) {
      second.push_back(seg);
    } else {
      split_pass(normalized_, seg.text, second);
    }
  }
  second.erase(
      std::remove_if(second.begin(), second.end(), [](const Segment& s) { return s.text.empty(); }),
      second.end());
  return second;
}

}  // namespace gptqd::tok
