// The decoders of released tokenizer.json files: ByteLevel (GPT-2, BLOOM, Llama 3, Qwen2), and
// SentencePiece's Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)] or Metaspace.
// Internal to io/.
#pragma once

#include <string>
#include <vector>

namespace gptqd::tok {

struct DecoderStep {
  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  Kind kind = Kind::kByteLevel;
  std::string a;            // kReplace: literal pattern (non-empty); kStrip: the character;
                            // kMetaspace: the replacement character
  std::string b;            // kReplace: its replacement
  int start = 0, stop = 0;  // kStrip: how many of the character to strip at each end
  bool prepend = true;      // kMetaspace: prepend_scheme is not "never"
};

// HF's Decoder::decode: each step's decode_chain over the token strings, then concatenated.
// Guarantees valid UTF-8 (invalid byte sequences become U+FFFD as in HF).
std::string decode_tokens(const std::vector<DecoderStep>& steps, std::vector<std::string> tokens);

}  // namespace gptqd::tok
