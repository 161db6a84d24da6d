// Unicode NFC (canonical decomposition, canonical ordering, canonical composition), for HF's NFC
// normalizer (Qwen2's tokenizer.json). Internal to io/.
#pragma once

#include <string>
#include <string_view>

namespace gptqd::tok {

// Appends the NFC form of text (valid UTF-8) to out. Text with no code point that NFC can
// change or combine (the common case: ASCII, Latin-1, CJK...) is appended as it is, in one pass.
void nfc_append(std::string_view text, std::string& out);

}  // namespace gptqd::tok
