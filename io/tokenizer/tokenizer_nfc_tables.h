// The Unicode tables of NFC (generated into io/tokenizer/tokenizer_nfc_tables.cpp by
// scripts/make_tokenizer_nfc_tables.py). Internal to io/tokenizer/tokenizer_nfc.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gptqd::tok::nfc_data {

struct CombiningRange {
  char32_t first, last;
  uint8_t ccc;
};
struct Decomposition {
  char32_t cp, first, second;  // second = 0: a singleton
};
struct Composition {
  char32_t first, second, composite;
};
struct Range {
  char32_t first, last;
};

extern const CombiningRange kCombiningClass[];
extern const size_t kCombiningClassSize;
extern const Decomposition kDecomposition[];  // sorted by cp
extern const size_t kDecompositionSize;
extern const Composition kComposition[];  // sorted by (first, second)
extern const size_t kCompositionSize;
extern const Range kNfcUnsafe[];
extern const size_t kNfcUnsafeSize;

}  // namespace gptqd::tok::nfc_data
