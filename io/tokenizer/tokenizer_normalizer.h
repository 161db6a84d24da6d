// The normalizers of released tokenizer.json files that gptqd implements: NFC (Qwen2), Prepend and
// Replace with a literal (SentencePiece-converted Llama 2 / Mistral v0.1), in a Sequence. Applied
// to each piece of text between added tokens, as HF tokenizers does. Internal to io/.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gptqd::tok {

struct NormalizerStep {
  enum class Kind { kNfc, kPrepend, kReplace };
  Kind kind = Kind::kNfc;
  std::string a;  // kPrepend: the prefix; kReplace: the literal pattern (non-empty)
  std::string b;  // kReplace: its replacement
};

// The text after every step in order. Prepend adds its prefix only to non-empty text, Replace
// replaces every non-overlapping occurrence left to right (HF's NormalizedString semantics).
// Needs: text valid UTF-8.
std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view text);

}  // namespace gptqd::tok
