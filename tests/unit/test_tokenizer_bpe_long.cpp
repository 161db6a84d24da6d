// BPE on very long words (issue 11): a SentencePiece-converted form without a pre-tokenizer
// (llama2, mistral) makes a whole text ONE word, which BpeModel merges with a heap of (rank,
// position), O(n log n); short words take a scanning path. Both must give, id for id, what the
// rule of HF tokenizers' Word::merge_all gives: merge the adjacent pair of lowest rank, the
// leftmost on ties, until no pair has a merge. The references here are that rule written the
// plain way: O(n^2) (every pair's rank in a vector, scanned for the lowest after each merge), and,
// for words too long for that, a segment tree over the pairs (no heap, no stale entries).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/tokenizer/bpe.h"
#include "io/tokenizer/tokenizer.h"
#include "tests/unit/test_tokenizer_util.h"

namespace gptqd {
namespace {

using nlohmann::json;
using tok::BpeModel;
using tok::BpeOptions;
using tok_test::read_file;

constexpr size_t kNoRank = static_cast<size_t>(-1);

struct Model {
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  BpeOptions options;
};

Model llama2_model() {
  const json j = json::parse(
      read_file(test::source_path("tests/fixtures/tokenizer/forms/llama2/tokenizer.json")));
  const json& m = j["model"];
  Model out;
  for (const auto& [token, id] : m["vocab"].items()) out.vocab[token] = id.get<int32_t>();
  for (const auto& merge : m["merges"]) {
    if (merge.is_array()) {
      out.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
    } else {
      const std::string s = merge.get<std::string>();
      const size_t sp = s.find(' ');
      out.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    }
  }
  if (m["unk_token"].is_string()) out.options.unk_token = m["unk_token"].get<std::string>();
  out.options.fuse_unk = m["fuse_unk"].get<bool>();
  out.options.byte_fallback = m["byte_fallback"].get<bool>();
  out.options.ignore_merges = m["ignore_merges"].get<bool>();
  return out;
}

// The rule, written independently of io/tokenizer/bpe.cpp.
class Reference {
 public:
  explicit Reference(const Model& m) : m_(m) {
    for (const auto& [token, id] : m.vocab) token_of_[id] = token;
    for (size_t rank = 0; rank < m.merges.size(); ++rank) {
      const auto& [a, b] = m.merges[rank];
      rank_[{m.vocab.at(a), m.vocab.at(b)}] = rank;  // a repeated pair keeps its last rank
    }
  }

  // The word's characters as ids, before any merge.
  std::vector<int32_t> characters(const std::string& word) const {
    std::vector<int32_t> ids;
    bool pending_unk = false;
    const int32_t unk = m_.options.unk_token ? m_.vocab.at(*m_.options.unk_token) : -1;
    for (size_t i = 0; i < word.size();) {
      const auto lead = static_cast<unsigned char>(word[i]);
      const size_t len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
      const std::string ch = word.substr(i, len);
      i += len;
      const auto it = m_.vocab.find(ch);
      if (it != m_.vocab.end()) {
        if (pending_unk) ids.push_back(unk);
        pending_unk = false;
        ids.push_back(it->second);
        continue;
      }
      std::vector<int32_t> bytes;
      for (const unsigned char b : ch) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        const auto bt = m_.vocab.find(name);
        if (bt == m_.vocab.end()) break;
        bytes.push_back(bt->second);
      }
      if (m_.options.byte_fallback && bytes.size() == ch.size()) {
        ids.insert(ids.end(), bytes.begin(), bytes.end());
      } else if (unk >= 0) {
        if (pending_unk && !m_.options.fuse_unk) ids.push_back(unk);
        pending_unk = true;
      }
    }
    if (pending_unk) ids.push_back(unk);
    return ids;
  }

  size_t rank(int32_t a, int32_t b) const {
    const auto it = rank_.find({a, b});
    return it == rank_.end() ? kNoRank : it->second;
  }
  int32_t merged(int32_t a, int32_t b) const {
    return m_.vocab.at(token_of_.at(a) + token_of_.at(b));
  }

  bool whole_word(const std::string& word, std::vector<int32_t>* ids) const {
    if (!m_.options.ignore_merges || !m_.vocab.count(word)) return false;
    *ids = {m_.vocab.at(word)};
    return true;
  }

  // O(n^2): after each merge, scan every pair for the lowest rank (the first one on ties).
  std::vector<int32_t> quadratic(const std::string& word) const {
    std::vector<int32_t> ids;
    if (whole_word(word, &ids)) return ids;
    ids = characters(word);
    std::vector<size_t> ranks;  // ranks[i]: the pair (ids[i], ids[i + 1])
    for (size_t i = 0; i + 1 < ids.size(); ++i) ranks.push_back(rank(ids[i], ids[i + 1]));
    for (;;) {
      size_t best = 0;
      for (size_t i = 0; i < ranks.size(); ++i) {
        if (ranks[i] < ranks[best]) best = i;
      }
      if (ranks.empty() || ranks[best] == kNoRank) break;
      ids[best] = merged(ids[best], ids[best + 1]);
      ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      ranks.erase(ranks.begin() + static_cast<std::ptrdiff_t>(best));
      if (best > 0) ranks[best - 1] = rank(ids[best - 1], ids[best]);
      if (best < ranks.size()) ranks[best] = rank(ids[best], ids[best + 1]);
    }
    return ids;
  }

  // The same rule with a segment tree holding, for each pair (by its left symbol's original
  // index), (rank, index); its root is the pair to merge. O(n log n), for the long words.
  std::vector<int32_t> tree(const std::string& word) const {
    std::vector<int32_t> ids;
    if (whole_word(word, &ids)) return ids;
    ids = characters(word);
    const size_t n = ids.size();
    if (n < 2) return ids;
    size_t size = 1;
    while (size < n) size *= 2;
    using Entry = std::pair<size_t, size_t>;  // (rank, index)
    std::vector<Entry> t(2 * size, {kNoRank, kNoRank});
    auto set = [&](size_t i, size_t r) {
      size_t k = size + i;
      t[k] = {r, i};
      for (k /= 2; k > 0; k /= 2) t[k] = std::min(t[2 * k], t[2 * k + 1]);
    };
    std::vector<size_t> next(n), prev(n);
    for (size_t i = 0; i < n; ++i) {
      next[i] = i + 1;  // n: none
      prev[i] = i == 0 ? n : i - 1;
    }
    for (size_t i = 0; i + 1 < n; ++i) set(i, rank(ids[i], ids[i + 1]));
    std::vector<bool> alive(n, true);
    while (t[1].first != kNoRank) {
      const size_t i = t[1].second, j = next[i];
      ids[i] = merged(ids[i], ids[j]);
      alive[j] = false;
      set(j, kNoRank);
      next[i] = next[j];
      if (next[i] < n) prev[next[i]] = i;
      set(i, next[i] < n ? rank(ids[i], ids[next[i]]) : kNoRank);
      if (prev[i] < n) set(prev[i], rank(ids[prev[i]], ids[i]));
    }
    std::vector<int32_t> out;
    for (size_t i = 0; i < n; ++i) {
      if (alive[i]) out.push_back(ids[i]);
    }
    return out;
  }

 private:
  const Model& m_;
  std::unordered_map<int32_t, std::string> token_of_;
  std::map<std::pair<int32_t, int32_t>, size_t> rank_;
};

std::vector<int32_t> encode_word(const BpeModel& bpe, const std::string& word) {
  std::vector<int32_t> ids;
  bpe.encode_word(word, ids);
  return ids;
}

BpeModel make_bpe(const Model& m) { return BpeModel(m.vocab, m.merges, m.options, "test"); }

// What llama2's normalizer makes of text (Prepend "▁", Replace " " by "▁"): the one word.
std::string llama2_word(const std::string& text) {
  std::string w = "\xE2\x96\x81";
  for (const char c : text) {
    if (c == ' ') {
      w += "\xE2\x96\x81";
    } else {
      w += c;
    }
  }
  return w;
}

std::string austen_prefix(size_t chars) {
  static const std::string text = read_file(test::source_path("data/austen.txt"));
  return text.substr(0, chars);  // austen.txt is ASCII
}

// The case: 200,000 characters of austen as one word, through the whole llama2
// tokenizer and through the BPE model alone, against the tree reference.
TEST(TokenizerBpeLong, Llama2WholeTextAsOneWordMatchesReference) {
  const Model m = llama2_model();
  const Reference ref(m);
  const std::string text = austen_prefix(200000);
  const std::string word = llama2_word(text);
  const std::vector<int32_t> expected = ref.tree(word);
  ASSERT_GT(expected.size(), 30000u);
  EXPECT_EQ(encode_word(make_bpe(m), word), expected);
  const auto tokenizer =
      Tokenizer::load(test::source_path("tests/fixtures/tokenizer/forms/llama2/tokenizer.json"));
  EXPECT_EQ(tokenizer.encode(text), expected);
}

// 20,000 characters (the heap path) with characters outside the vocabulary, under each setting
// that changes the characters' ids, against the O(n^2) reference; the tree reference agrees.
TEST(TokenizerBpeLong, LongWordMatchesQuadraticReferenceUnderEachSetting) {
  std::string text = austen_prefix(20000);
  const char* const odd[] = {"\xC3\xA9", "\xE2\x82\xAC\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                             "\xD0\xB6\xC3\xA9\xE2\x82\xAC"};
  for (size_t i = 0, k = 0; i < text.size(); i += 997, ++k) text.insert(i, odd[k % 4]);
  const std::string word = llama2_word(text);
  Model base = llama2_model();
  ASSERT_TRUE(base.options.byte_fallback);
  for (int variant = 0; variant < 5; ++variant) {
    Model m = base;
    if (variant >= 1 && variant <= 3) {  // no byte tokens: unknown characters become unk
      m.options.byte_fallback = variant == 3;
      m.options.fuse_unk = variant == 1;
      for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        if (variant == 3 && b < 0xC0) continue;  // some bytes only: fallback fails, unk
        m.vocab.erase(name);
      }
    }
    if (variant == 4) m.options.ignore_merges = true;
    SCOPED_TRACE("variant " + std::to_string(variant));
    const Reference ref(m);
    const std::vector<int32_t> expected = ref.quadratic(word);
    EXPECT_EQ(ref.tree(word), expected);
    EXPECT_EQ(encode_word(make_bpe(m), word), expected);
  }
}

// Every length from 1 to 400 characters at several places in the text: both paths and the
// switch between them.
TEST(TokenizerBpeLong, EveryLengthAroundThePathSwitchMatchesReference) {
  const Model m = llama2_model();
  const Reference ref(m);
  const BpeModel bpe = make_bpe(m);
  const std::string text = llama2_word(austen_prefix(60000));
  for (size_t start : {size_t{0}, size_t{12345}, size_t{40001}}) {
    while ((static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
    for (size_t len = 1; len <= 400; ++len) {
      size_t end = start + len;
      while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
      const std::string word = text.substr(start, end - start);
      ASSERT_EQ(encode_word(bpe, word), ref.quadratic(word)) << "start " << start << " len " << len;
    }
  }
}

// Equal ranks: the leftmost pair first. "a" x n with merges "a a" then "aa a": the leftmost rule
// pairs from the left, so an odd n ends "aa ... aa aaa"; pairing from the right would leave
// "a aa ... aa". n = 5 takes the scanning path, n = 100001 the heap.
TEST(TokenizerBpeLong, TiesGoToTheLeftmostPair) {
  Model m;
  m.vocab = {{"a", 0}, {"aa", 1}, {"aaa", 2}};
  m.merges = {{"a", "a"}, {"aa", "a"}};
  const BpeModel bpe = make_bpe(m);
  for (const size_t n : {size_t{5}, size_t{100001}}) {
    std::vector<int32_t> expected((n - 3) / 2, 1);
    expected.push_back(2);
    EXPECT_EQ(encode_word(bpe, std::string(n, 'a')), expected) << n;
  }
}

// Random merge lists over a three-letter alphabet, ranks in any order (a merge's result may
// rank before the merges that make its parts; many ties), random words of 1..600 letters (the
// scanning path and the heap) and one of 20,000 (the rank buckets).
TEST(TokenizerBpeLong, RandomMergeListsMatchQuadraticReference) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 40; ++trial) {
    Model m;
    std::vector<std::string> tokens = {"a", "b", "c"};
    for (const auto& t : tokens) m.vocab.emplace(t, static_cast<int32_t>(m.vocab.size()));
    while (m.merges.size() < 40) {
      const std::string& x = tokens[rng() % tokens.size()];
      const std::string& y = tokens[rng() % tokens.size()];
      if (x.size() + y.size() > 8) continue;
      m.merges.emplace_back(x, y);
      if (m.vocab.emplace(x + y, static_cast<int32_t>(m.vocab.size())).second) {
        tokens.push_back(x + y);
      }
    }
    std::shuffle(m.merges.begin(), m.merges.end(), rng);
    const Reference ref(m);
    const BpeModel bpe = make_bpe(m);
    for (int w = 0; w < 30; ++w) {
      std::string word(1 + rng() % 600, 'a');
      for (auto& ch : word) ch = static_cast<char>('a' + rng() % 3);
      ASSERT_EQ(encode_word(bpe, word), ref.quadratic(word)) << "trial " << trial << " " << word;
    }
    // A word long enough for the rank buckets, against the tree reference.
    std::string word(20000, 'a');
    for (auto& ch : word) ch = static_cast<char>('a' + rng() % 3);
    ASSERT_EQ(encode_word(bpe, word), ref.tree(word)) << "trial " << trial;
  }
}

}  // namespace
}  // namespace gptqd
