// BPE merging, as HF tokenizers' Word::merge_all: a min-heap of (rank, position) over the
// current adjacent pairs; stale entries are skipped when popped.
#include "io/bpe.h"

#include <array>
#include <mutex>
#include <queue>

#include "io/tokenizer_unicode.h"
#include "kernels/check.h"

namespace gptqd::tok {
namespace {

// Bounds the per-word cache; a text has far fewer distinct words than this.
constexpr size_t kMaxCachedWords = 200000;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Symbol {
  int32_t id;
  int64_t prev, next;  // -1 at the ends
  bool removed;
};

struct Candidate {
  uint32_t rank;
  size_t pos;
  int32_t new_id;
  // std::priority_queue pops the largest: invert so the lowest rank, then position, comes first.
  bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

struct MergeResult {
  uint32_t rank;
  int32_t new_id;
};

}  // namespace

struct BpeModel::Impl {
  std::unordered_map<std::string, int32_t> vocab;
  std::unordered_map<int32_t, const std::string*> id_to_token;  // into vocab's keys
  std::unordered_map<uint64_t, MergeResult> merges;
  BpeOptions options;
  int32_t unk_id = -1;

  std::array<int32_t, 256> byte_ids;  // the id of "<0xAB>" for byte 0xAB, -1 if none

  // The "<0xAB>" token ids of ch's bytes, false when one is missing (HF's format "<{:#04X}>").
  bool byte_tokens(const std::string& ch, std::vector<int32_t>* ids) const {
    ids->clear();
    for (const unsigned char b : ch) {
      if (byte_ids[b] < 0) return false;
      ids->push_back(byte_ids[b]);
    }
    return true;
  }

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;
};

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::string& where)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.vocab = std::move(vocab);
  m.options = std::move(options);
  // A map, not a vector indexed by id: a hostile file could name id 2^31 - 1.
  m.id_to_token.reserve(m.vocab.size());
  for (const auto& [token, id] : m.vocab) {
    const auto [it, fresh] = m.id_to_token.emplace(id, &token);
    GPTQD_INPUT_CHECK(fresh, "{}: model.vocab gives id {} to both '{}' and '{}'", where, id,
                      *it->second, token);
  }
  if (m.options.unk_token) {
    const auto it = m.vocab.find(*m.options.unk_token);
    GPTQD_INPUT_CHECK(it != m.vocab.end(), "{}: model.unk_token '{}' is not in model.vocab", where,
                      *m.options.unk_token);
    m.unk_id = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = m.vocab.find(fmt::format("<0x{:02X}>", b));
    m.byte_ids[b] = it == m.vocab.end() ? -1 : it->second;
  }
  m.merges.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    const auto ia = m.vocab.find(a), ib = m.vocab.find(b), iab = m.vocab.find(a + b);
    GPTQD_INPUT_CHECK(ia != m.vocab.end() && ib != m.vocab.end(),
                      "{}: model.merges[{}] '{} {}' names a token that is not in model.vocab",
                      where, rank, a, b);
    GPTQD_INPUT_CHECK(iab != m.vocab.end(),
                      "{}: model.merges[{}] '{} {}' makes '{}', which is not in model.vocab", where,
                      rank, a, b, a + b);
    // A repeated pair keeps its last rank, as HF's HashMap collect does.
    m.merges[pair_key(ia->second, ib->second)] = {static_cast<uint32_t>(rank), iab->second};
  }
}

BpeModel::~BpeModel() = default;
BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;

std::vector<int32_t> BpeModel::merge_word(std::string_view word) const {
  const Impl& m = *impl_;
  if (m.options.ignore_merges) {
    const auto it = m.vocab.find(std::string(word));
    if (it != m.vocab.end()) return {it->second};
  }

  // Characters to ids; unknown ones become unk (fused or not) or vanish, as in merge_word.
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  bool pending_unk = false;
  auto add = [&](int32_t id) {
    const auto n = static_cast<int64_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back({id, n - 1, -1, false});
  };
  std::string ch;
  std::vector<int32_t> bytes;
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t begin = pos;
    next_code_point(word, pos);
    ch.assign(word.substr(begin, pos - begin));
    const auto it = m.vocab.find(ch);
    if (it != m.vocab.end()) {
      if (pending_unk) add(m.unk_id);
      pending_unk = false;
      add(it->second);
    } else if (m.options.byte_fallback && m.byte_tokens(ch, &bytes)) {
      // HF adds the byte tokens without first flushing a pending unk (only possible when some
      // byte token is missing from the vocabulary): the unk then follows them, as here.
      for (const int32_t id : bytes) add(id);
    } else if (m.unk_id >= 0) {
      if (pending_unk && !m.options.fuse_unk) add(m.unk_id);
      pending_unk = true;
    }
  }
  if (pending_unk) add(m.unk_id);

  std::priority_queue<Candidate> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    const auto it = m.merges.find(pair_key(symbols[i].id, symbols[i + 1].id));
    if (it != m.merges.end()) queue.push({it->second.rank, i, it->second.new_id});
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.removed || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    // Skip entries made stale by an earlier merge on either side.
    const auto cur = m.merges.find(pair_key(left.id, right.id));
    if (cur == m.merges.end() || cur->second.new_id != top.new_id) continue;

    left.id = top.new_id;
    right.removed = true;
    left.next = right.next;
    if (right.next >= 0)
      symbols[static_cast<size_t>(right.next)].prev = static_cast<int64_t>(top.pos);
    if (left.prev >= 0) {
      const auto it = m.merges.find(pair_key(symbols[static_cast<size_t>(left.prev)].id, left.id));
      if (it != m.merges.end()) {
        queue.push({it->second.rank, static_cast<size_t>(left.prev), it->second.new_id});
      }
    }
    if (left.next >= 0) {
      const auto it = m.merges.find(pair_key(left.id, symbols[static_cast<size_t>(left.next)].id));
      if (it != m.merges.end()) queue.push({it->second.rank, top.pos, it->second.new_id});
    }
  }

  std::vector<int32_t> ids;
  for (const auto& s : symbols) {
    if (!s.removed) ids.push_back(s.id);
  }
  return ids;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  Impl& m = *impl_;
  std::string key(word);
  {
    std::lock_guard<std::mutex> lock(m.cache_mutex);
    const auto it = m.cache.find(key);
    if (it != m.cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge_word(word);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(m.cache_mutex);
  if (m.cache.size() < kMaxCachedWords) m.cache.emplace(std::move(key), std::move(ids));
}

std::optional<int32_t> BpeModel::token_to_id(const std::string& token) const {
  const auto it = impl_->vocab.find(token);
  if (it == impl_->vocab.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  const auto it = impl_->id_to_token.find(id);
  return it == impl_->id_to_token.end() ? nullptr : it->second;
}

int64_t BpeModel::size() const { return static_cast<int64_t>(impl_->vocab.size()); }

}  // namespace gptqd::tok
