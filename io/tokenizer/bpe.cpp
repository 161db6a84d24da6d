// BPE merging with the result of HF tokenizers' Word::merge_all: the adjacent pair of lowest
// merge rank is merged, the leftmost one on ties, until no pair has a merge.
//
// merge_all keeps a min-heap of (rank, position) over the current pairs and skips stale entries
// when popped (the pair at that position has changed since). An entry is stale exactly when the
// pair has changed: the text a position's pair covers only grows, and a token is its text, so the
// "same new id" test HF uses cannot take a changed pair for the old one. merge_all therefore
// merges, at every step, the current pair of lowest (rank, position); the three paths below all
// do that, so they give the same ids (tests/unit/test_tokenizer_bpe_long.cpp checks them against
// the rule written plainly).
//  - Short words (most of them, <= kScanMaxSymbols): the symbols in a vector and each pair's
//    rank beside them; scan for the lowest, merge, refresh the two neighbouring ranks. O(n^2),
//    but n is small and there is no heap to keep.
//  - Longer words: merge_all's algorithm, O(n log n): a doubly linked list of symbols and a
//    4-ary min-heap of packed (rank, position) keys, stale keys skipped when popped.
//  - The longest (>= kBucketMinSymbols; a SentencePiece-converted form without a pre-tokenizer
//    makes a whole text one word): the same, the heap replaced by a bucket per rank and a small
//    heap of ranks (RankBuckets), which pops in the same order with far fewer cache misses.
#include "io/tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <functional>
#include <limits>
#include <mutex>

#include "io/tokenizer/tokenizer_unicode.h"
#include "base/check.h"

namespace gptqd::tok {
namespace {

// Bounds the per-word cache; a text has far fewer distinct words than this.
constexpr size_t kMaxCachedWords = 200000;
// Longer words are not cached (as HF's MAX_LENGTH): rarely repeated, costly to copy and hash.
constexpr size_t kMaxCachedWordBytes = 256;

// Words of at most this many symbols take the scanning path.
constexpr size_t kScanMaxSymbols = 96;
// Words of at least this many symbols use rank buckets rather than one heap.
constexpr size_t kBucketMinSymbols = 8192;

constexpr uint32_t kNoRank = std::numeric_limits<uint32_t>::max();

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// The merges, pair -> (rank, new id), in one open-addressing table (linear probing): a lookup
// is a multiply and, mostly, one cache line. An empty slot has rank kNoRank.
class MergeTable {
 public:
  struct Slot {
    uint64_t key;
    uint32_t rank;
    int32_t new_id;
  };

  void reserve(size_t n) {
    size_t cap = 16;
    int bits = 4;
    while (cap < n + n / 2 + 1) {
      cap <<= 1;
      ++bits;
    }
    slots_.assign(cap, Slot{0, kNoRank, 0});
    mask_ = cap - 1;
    shift_ = 64 - bits;
  }

  // Sets key's value, replacing an earlier one. At most the reserved count of keys.
  void assign(uint64_t key, uint32_t rank, int32_t new_id) {
    for (size_t i = home(key);; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.rank == kNoRank || s.key == key) {
        s = {key, rank, new_id};
        return;
      }
    }
  }

  const Slot* find(uint64_t key) const {
    for (size_t i = home(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.rank == kNoRank) return nullptr;
      if (s.key == key) return &s;
    }
  }

  uint32_t rank(int32_t a, int32_t b) const {
    const Slot* s = find(pair_key(a, b));
    return s ? s->rank : kNoRank;
  }

 private:
  size_t home(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
};

// A min-heap with four children per node: half the levels of a binary heap, and a node's
// children share a cache line, which is what counts once the heap outgrows the caches.
template <typename Key>
class QuaternaryMinHeap {
 public:
  explicit QuaternaryMinHeap(std::vector<Key> keys) : h_(std::move(keys)) {
    if (h_.size() < 2) return;
    for (size_t i = (h_.size() - 2) / 4 + 1; i-- > 0;) sift_down(i, h_[i]);
  }
  bool empty() const { return h_.empty(); }
  void push(Key key) {
    size_t i = h_.size();
    h_.push_back(key);
    while (i > 0) {
      const size_t parent = (i - 1) / 4;
      if (!(key < h_[parent])) break;
      h_[i] = h_[parent];
      i = parent;
    }
    h_[i] = key;
  }
  Key pop() {
    const Key top = h_[0];
    const Key last = h_.back();
    h_.pop_back();
    if (!h_.empty()) sift_down(0, last);
    return top;
  }

 private:
  // Places key at hole i or below.
  void sift_down(size_t i, Key key) {
    const size_t n = h_.size();
    for (;;) {
      const size_t first = 4 * i + 1;
      if (first >= n) break;
      const size_t end = first + 4 < n ? first + 4 : n;
      size_t best = first;
      for (size_t c = first + 1; c < end; ++c) {
        if (h_[c] < h_[best]) best = c;
      }
      if (!(h_[best] < key)) break;
      h_[i] = h_[best];
      i = best;
    }
    h_[i] = key;
  }

  std::vector<Key> h_;
};

// For the longest words, the same order from a two-level queue with the locality a heap of
// millions of keys lacks: a bucket per rank (the positions pushed before the merging starts, in
// order, and a small min-heap of the positions pushed since) and a min-heap of the ranks whose
// bucket may be non-empty. Popping takes the lowest position of the lowest rank: the same
// (rank, position) order as one heap of the pairs, so the same merges in the same order.
template <typename Idx>
class RankBuckets {
 public:
  // initial: (rank, position) of the pairs, positions increasing.
  RankBuckets(size_t n_ranks, const std::vector<std::pair<uint32_t, Idx>>& initial)
      : next_(n_ranks + 1, 0), end_(n_ranks + 1, 0), extra_(n_ranks), in_heap_(n_ranks, 0) {
    for (const auto& [r, pos] : initial) ++end_[r + 1];
    for (size_t r = 0; r < n_ranks; ++r) end_[r + 1] += end_[r];
    std::copy(end_.begin(), end_.end() - 1, next_.begin());  // bucket r: [end_[r], end_[r + 1])
    initial_.resize(initial.size());
    std::vector<size_t> fill(next_.begin(), next_.end());
    for (const auto& [r, pos] : initial) initial_[fill[r]++] = pos;
    for (size_t r = 0; r < n_ranks; ++r) {
      end_[r] = end_[r + 1];
      if (next_[r] < end_[r]) {
        ranks_.push_back(static_cast<uint32_t>(r));
        in_heap_[r] = 1;
      }
    }
    // ranks_ is increasing: already a min-heap.
  }

  // The symbol array, indexed by position, to prefetch from.
  void prefetch_from(const void* base, size_t stride) {
    prefetch_base_ = static_cast<const char*>(base);
    prefetch_stride_ = stride;
  }

  void push(uint32_t rank, Idx pos) {
    auto& ex = extra_[rank];
    ex.push_back(pos);
    std::push_heap(ex.begin(), ex.end(), std::greater<Idx>());
    if (!in_heap_[rank]) {
      in_heap_[rank] = 1;
      ranks_.push_back(rank);
      std::push_heap(ranks_.begin(), ranks_.end(), std::greater<uint32_t>());
    }
  }

  bool pop(uint32_t* rank, Idx* pos) {
    while (!ranks_.empty()) {
      const uint32_t r = ranks_.front();
      auto& ex = extra_[r];
      const bool from_initial = next_[r] < end_[r];
      if (!from_initial && ex.empty()) {
        std::pop_heap(ranks_.begin(), ranks_.end(), std::greater<uint32_t>());
        ranks_.pop_back();
        in_heap_[r] = 0;
        continue;
      }
      *rank = r;
      if (from_initial && (ex.empty() || initial_[next_[r]] < ex.front())) {
        // The symbols of the positions a few pops ahead: fetched while these are merged.
        if (prefetch_base_ && next_[r] + kPrefetchAhead < end_[r]) {
          const Idx ahead = initial_[next_[r] + kPrefetchAhead];
          __builtin_prefetch(prefetch_base_ + prefetch_stride_ * ahead);
        }
        *pos = initial_[next_[r]++];
      } else {
        *pos = ex.front();
        std::pop_heap(ex.begin(), ex.end(), std::greater<Idx>());
        ex.pop_back();
      }
      return true;
    }
    return false;
  }

 private:
  static constexpr size_t kPrefetchAhead = 16;
  const char* prefetch_base_ = nullptr;
  size_t prefetch_stride_ = 0;
  std::vector<Idx> initial_;
  std::vector<size_t> next_, end_;  // bucket r's unpopped initial positions: [next_[r], end_[r])
  std::vector<std::vector<Idx>> extra_;
  std::vector<uint32_t> ranks_;
  std::vector<char> in_heap_;
};

// The short-word path, in place on ids.
void merge_scan(const MergeTable& merges, const std::vector<int32_t>& rank_new_id,
                std::vector<int32_t>& ids) {
  if (ids.size() < 2) return;
  std::array<uint32_t, kScanMaxSymbols> ranks;  // ranks[i]: the pair (ids[i], ids[i + 1])
  size_t n = ids.size();
  for (size_t i = 0; i + 1 < n; ++i) ranks[i] = merges.rank(ids[i], ids[i + 1]);
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i) {
      if (ranks[i] < ranks[best]) best = i;
    }
    if (ranks[best] == kNoRank) break;
    ids[best] = rank_new_id[ranks[best]];
    for (size_t i = best + 1; i + 1 < n; ++i) ids[i] = ids[i + 1];
    for (size_t i = best; i + 2 < n; ++i) ranks[i] = ranks[i + 1];
    --n;
    if (best > 0) ranks[best - 1] = merges.rank(ids[best - 1], ids[best]);
    if (best + 1 < n) ranks[best] = merges.rank(ids[best], ids[best + 1]);
  }
  ids.resize(n);
}

// Packs (rank, position) so that comparing keys compares rank, then position.
template <typename Idx>
struct PackedKey;
template <>
struct PackedKey<uint32_t> {
  using Key = uint64_t;
  static Key key(uint32_t rank, uint32_t pos) { return (static_cast<uint64_t>(rank) << 32) | pos; }
  static uint32_t rank(Key k) { return static_cast<uint32_t>(k >> 32); }
  static uint32_t pos(Key k) { return static_cast<uint32_t>(k); }
};
template <>
struct PackedKey<uint64_t> {
  using Key = std::pair<uint32_t, uint64_t>;
  static Key key(uint32_t rank, uint64_t pos) { return {rank, pos}; }
  static uint32_t rank(const Key& k) { return k.first; }
  static uint64_t pos(const Key& k) { return k.second; }
};

// One 4-ary heap of packed keys: the words between the scanning path and the buckets.
template <typename Idx>
class PackedHeap {
  using P = PackedKey<Idx>;

 public:
  PackedHeap(size_t /*n_ranks*/, const std::vector<std::pair<uint32_t, Idx>>& initial)
      : heap_(keys(initial)) {}
  void prefetch_from(const void*, size_t) {}
  void push(uint32_t rank, Idx pos) { heap_.push(P::key(rank, pos)); }
  bool pop(uint32_t* rank, Idx* pos) {
    if (heap_.empty()) return false;
    const auto k = heap_.pop();
    *rank = P::rank(k);
    *pos = P::pos(k);
    return true;
  }

 private:
  static std::vector<typename P::Key> keys(const std::vector<std::pair<uint32_t, Idx>>& initial) {
    std::vector<typename P::Key> out;
    out.reserve(initial.size());
    for (const auto& [r, pos] : initial) out.push_back(P::key(r, pos));
    return out;
  }
  QuaternaryMinHeap<typename P::Key> heap_;
};

// merge_all on a doubly linked list of symbols, in place on ids. Queue pops (rank, position) in
// that order, stale entries included: they are skipped here.
template <typename Idx, template <typename> class Queue>
void merge_linked(const MergeTable& merges, const std::vector<int32_t>& rank_new_id,
                  std::vector<int32_t>& ids) {
  constexpr Idx kNone = std::numeric_limits<Idx>::max();  // no neighbour that side
  constexpr Idx kRemoved = kNone - 1;                     // as next: merged into its left
  struct Symbol {
    int32_t id;
    Idx prev, next;
  };
  const size_t n = ids.size();
  std::vector<Symbol> sym(n);
  std::vector<std::pair<uint32_t, Idx>> initial;
  initial.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    sym[i] = {ids[i], i == 0 ? kNone : static_cast<Idx>(i - 1),
              i + 1 == n ? kNone : static_cast<Idx>(i + 1)};
    if (i + 1 < n) {
      const uint32_t r = merges.rank(ids[i], ids[i + 1]);
      if (r != kNoRank) initial.emplace_back(r, static_cast<Idx>(i));
    }
  }
  Queue<Idx> queue(rank_new_id.size(), initial);
  initial = {};
  queue.prefetch_from(sym.data(), sizeof(Symbol));
  uint32_t rank;
  Idx pos;
  while (queue.pop(&rank, &pos)) {
    Symbol& left = sym[pos];
    if (left.next >= kRemoved) continue;  // merged away, or the last symbol
    Symbol& right = sym[left.next];
    const int32_t new_id = rank_new_id[rank];
    // Stale: the pair at pos changed since the entry was pushed (see the top of the file).
    const MergeTable::Slot* cur = merges.find(pair_key(left.id, right.id));
    if (cur == nullptr || cur->new_id != new_id) continue;

    left.id = new_id;
    left.next = right.next;
    right.next = kRemoved;
    if (left.next != kNone) sym[left.next].prev = pos;
    if (left.prev != kNone) {
      const uint32_t r = merges.rank(sym[left.prev].id, left.id);
      if (r != kNoRank) queue.push(r, left.prev);
    }
    if (left.next != kNone) {
      const uint32_t r = merges.rank(left.id, sym[left.next].id);
      if (r != kNoRank) queue.push(r, pos);
    }
  }
  size_t out = 0;
  for (size_t i = 0; i < n; ++i) {
    if (sym[i].next != kRemoved) ids[out++] = sym[i].id;
  }
  ids.resize(out);
}

}  // namespace

struct BpeModel::Impl {
  std::unordered_map<std::string, int32_t> vocab;
  std::unordered_map<int32_t, const std::string*> id_to_token;  // into vocab's keys
  MergeTable merges;
  std::vector<int32_t> rank_new_id;  // merges[rank]'s token
  BpeOptions options;
  int32_t unk_id = -1;

  std::array<int32_t, 256> byte_ids;  // the id of "<0xAB>" for byte 0xAB, -1 if none

  // The ids of the vocabulary's tokens of one to four bytes, for the word's characters: a byte
  // by value, longer ones by their bytes packed with their length (short_key).
  std::array<int32_t, 256> one_byte_ids;
  std::array<bool, 256> one_byte_known;
  std::unordered_map<uint64_t, int32_t> short_ids;

  static uint64_t short_key(std::string_view s) {
    uint64_t k = s.size();
    for (const unsigned char c : s) k = (k << 8) | c;
    return k;
  }

  // The id of the character ch, false if it is not in the vocabulary.
  bool char_id(std::string_view ch, int32_t* id) const {
    if (ch.size() == 1) {
      *id = one_byte_ids[static_cast<unsigned char>(ch[0])];
      return one_byte_known[static_cast<unsigned char>(ch[0])];
    }
    if (ch.size() <= 4) {
      const auto it = short_ids.find(short_key(ch));
      if (it == short_ids.end()) return false;
      *id = it->second;
      return true;
    }
    const auto it = vocab.find(std::string(ch));
    if (it == vocab.end()) return false;
    *id = it->second;
    return true;
  }

  // The "<0xAB>" token ids of ch's bytes, false when one is missing (HF's format "<{:#04X}>").
  bool byte_tokens(std::string_view ch, std::vector<int32_t>* ids) const {
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
  m.one_byte_ids.fill(0);
  m.one_byte_known.fill(false);
  for (const auto& [token, id] : m.vocab) {
    if (token.size() == 1) {
      m.one_byte_ids[static_cast<unsigned char>(token[0])] = id;
      m.one_byte_known[static_cast<unsigned char>(token[0])] = true;
    } else if (token.size() >= 2 && token.size() <= 4) {
      m.short_ids.emplace(Impl::short_key(token), id);
    }
  }
  GPTQD_INPUT_CHECK(merges.size() < kNoRank, "{}: model.merges has {} entries, too many", where,
                    merges.size());
  m.merges.reserve(merges.size());
  m.rank_new_id.resize(merges.size());
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
    m.merges.assign(pair_key(ia->second, ib->second), static_cast<uint32_t>(rank), iab->second);
    m.rank_new_id[rank] = iab->second;
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
  std::vector<int32_t> ids;
  ids.reserve(word.size());
  bool pending_unk = false;
  std::vector<int32_t> bytes;
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t begin = pos;
    next_code_point(word, pos);
    const std::string_view ch = word.substr(begin, pos - begin);
    int32_t id;
    if (m.char_id(ch, &id)) {
      if (pending_unk) ids.push_back(m.unk_id);
      pending_unk = false;
      ids.push_back(id);
    } else if (m.options.byte_fallback && m.byte_tokens(ch, &bytes)) {
      // HF adds the byte tokens without first flushing a pending unk (only possible when some
      // byte token is missing from the vocabulary): the unk then follows them, as here.
      ids.insert(ids.end(), bytes.begin(), bytes.end());
    } else if (m.unk_id >= 0) {
      if (pending_unk && !m.options.fuse_unk) ids.push_back(m.unk_id);
      pending_unk = true;
    }
  }
  if (pending_unk) ids.push_back(m.unk_id);

  if (ids.size() <= kScanMaxSymbols) {
    merge_scan(m.merges, m.rank_new_id, ids);
  } else if (ids.size() < kBucketMinSymbols) {
    merge_linked<uint32_t, PackedHeap>(m.merges, m.rank_new_id, ids);
  } else if (ids.size() < std::numeric_limits<uint32_t>::max() - 1) {
    merge_linked<uint32_t, RankBuckets>(m.merges, m.rank_new_id, ids);
  } else {
    merge_linked<uint64_t, RankBuckets>(m.merges, m.rank_new_id, ids);
  }
  return ids;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  Impl& m = *impl_;
  if (word.size() >= kMaxCachedWordBytes) {  // never cached: no key to copy and hash
    const std::vector<int32_t> ids = merge_word(word);
    out.insert(out.end(), ids.begin(), ids.end());
    return;
  }
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
