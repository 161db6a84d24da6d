// NFC per Unicode Standard Annex #15, with Hangul composed algorithmically (section 3.12 of the
// standard). Tables from io/tokenizer/tokenizer_nfc_tables.cpp (Unicode 14, see its generator).
#include "io/tokenizer/tokenizer_nfc.h"

#include <algorithm>
#include <vector>

#include "io/tokenizer/tokenizer_nfc_tables.h"
#include "io/tokenizer/tokenizer_unicode.h"

namespace gptqd::tok {
namespace {

using namespace nfc_data;

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

bool unsafe(char32_t cp) {
  if (cp < 0x300) return false;  // no code point below U+0300 is combining or decomposes
  const Range* end = kNfcUnsafe + kNfcUnsafeSize;
  const Range* it =
      std::upper_bound(kNfcUnsafe, end, cp, [](char32_t c, const Range& r) { return c < r.first; });
  return it != kNfcUnsafe && cp <= (it - 1)->last;
}

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const CombiningRange* end = kCombiningClass + kCombiningClassSize;
  const CombiningRange* it = std::upper_bound(
      kCombiningClass, end, cp, [](char32_t c, const CombiningRange& r) { return c < r.first; });
  return it != kCombiningClass && cp <= (it - 1)->last ? (it - 1)->ccc : 0;
}

void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  const Decomposition* end = kDecomposition + kDecompositionSize;
  const Decomposition* it = std::lower_bound(
      kDecomposition, end, cp, [](const Decomposition& d, char32_t c) { return d.cp < c; });
  if (it == end || it->cp != cp) {
    out.push_back(cp);
    return;
  }
  decompose(it->first, out);
  if (it->second != 0) decompose(it->second, out);
}

// The primary composite of (a, b), or 0.
char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const Composition* end = kComposition + kCompositionSize;
  const Composition* it =
      std::lower_bound(kComposition, end, std::make_pair(a, b),
                       [](const Composition& c, std::pair<char32_t, char32_t> k) {
                         return std::make_pair(c.first, c.second) < k;
                       });
  return it != end && it->first == a && it->second == b ? it->composite : 0;
}

void nfc_slow(std::string_view text, std::string& out) {
  std::vector<char32_t> cps;
  for (size_t pos = 0; pos < text.size();) decompose(next_code_point(text, pos), cps);
  // Canonical ordering: a stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < cps.size();) {
    if (combining_class(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && combining_class(cps[j]) != 0) ++j;
    std::stable_sort(
        cps.begin() + static_cast<std::ptrdiff_t>(i), cps.begin() + static_cast<std::ptrdiff_t>(j),
        [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  // Canonical composition: each character combines with the last starter unless blocked.
  std::vector<char32_t> res;
  res.reserve(cps.size());
  size_t starter = SIZE_MAX;
  int last_ccc = -1;
  for (const char32_t cp : cps) {
    const int ccc = combining_class(cp);
    if (starter != SIZE_MAX) {
      // Between the starter and cp lie only non-starters, in canonical order: cp is blocked
      // when the last of them has a class >= its own (any of them, if cp is a starter).
      const bool blocked = res.size() - 1 != starter && last_ccc >= ccc;
      if (const char32_t c = blocked ? 0 : compose(res[starter], cp); c != 0) {
        res[starter] = c;
        continue;
      }
    }
    if (ccc == 0) {
      starter = res.size();
      last_ccc = -1;
    } else {
      last_ccc = ccc;
    }
    res.push_back(cp);
  }
  for (const char32_t cp : res) append_utf8(out, cp);
}

}  // namespace

void nfc_append(std::string_view text, std::string& out) {
  for (size_t pos = 0; pos < text.size();) {
    if (unsafe(next_code_point(text, pos))) {
      nfc_slow(text, out);
      return;
    }
  }
  out.append(text);
}

}  // namespace gptqd::tok
