// Tokenizer: added tokens, then Split steps, then ByteLevel, then BPE per piece (HF's pipeline
// without a normalizer); decode through the ByteLevel decoder.
#include "io/tokenizer.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>

#include "io/added_tokens.h"
#include "io/bpe.h"
#include "io/byte_level.h"
#include "io/pretokenize.h"
#include "io/tokenizer_json.h"
#include "io/tokenizer_unicode.h"
#include "kernels/check.h"
#include "kernels/log.h"

namespace gptqd {

struct Tokenizer::Impl {
  std::string path;
  tok::AddedTokenMatcher added;
  std::unordered_map<int32_t, std::string> added_by_id;
  std::vector<tok::SplitRule> splits;
  bool add_prefix_space = false;
  bool use_regex = false;
  tok::BpeModel bpe;
  int64_t vocab_size = 0;

  Impl(tok::TokenizerSpec spec, const std::string& file)
      : path(file),
        splits(std::move(spec.splits)),
        add_prefix_space(spec.add_prefix_space),
        use_regex(spec.use_regex),
        bpe(std::move(spec.vocab), spec.merges, spec.bpe, file) {
    vocab_size = bpe.size();
    std::unordered_map<std::string, int32_t> added_ids;
    int32_t max_added_id = -1;
    for (auto& t : spec.added_tokens) {
      const int32_t id = hf_added_token_id(t.content, added_ids, max_added_id);
      if (id != t.id) {
        GPTQD_LOG_WARN(
            "{}: added token '{}' has id {} in the file but {} in the tokenizer, as HF "
            "tokenizers assigns it; using {}",
            file, t.content, t.id, id, id);
        t.id = id;
      }
      if (!bpe.token_to_id(t.content)) {
        const std::string* other = bpe.id_to_token(id);
        GPTQD_INPUT_CHECK(other == nullptr,
                          "{}: added token '{}' gets id {}, which model.vocab gives to '{}'", file,
                          t.content, id, other ? *other : "");
        ++vocab_size;
      }
      added_ids.emplace(t.content, id);
      max_added_id = std::max(max_added_id, id);
      added_by_id.emplace(id, t.content);
    }
    added = tok::AddedTokenMatcher(std::move(spec.added_tokens));
  }

  // The id HF tokenizers' AddedVocabulary::add_tokens gives an added token while it loads the
  // file's list in order (it warns and ignores the id written in the file): the vocabulary's id
  // if the content is a token, else the next id after the vocabulary and the tokens added so far.
  // max_added_id: the largest id given so far (-1 before the first).
  int32_t hf_added_token_id(const std::string& content,
                            const std::unordered_map<std::string, int32_t>& added_ids,
                            int32_t max_added_id) const {
    if (const auto it = added_ids.find(content); it != added_ids.end()) return it->second;
    if (const auto id = bpe.token_to_id(content)) return *id;
    const auto vocab_len = static_cast<int32_t>(bpe.size());
    if (added_ids.empty()) return vocab_len;
    return max_added_id >= vocab_len || vocab_len == 0 ? max_added_id + 1 : vocab_len;
  }

  // Pre-tokenizer steps after the added tokens, then BPE on each piece.
  void encode_text(std::string_view text, std::vector<int32_t>& out) const {
    std::vector<std::string_view> pieces{text}, next;
    for (const auto& rule : splits) {
      next.clear();
      for (const auto piece : pieces) tok::apply_split(rule, piece, next);
      pieces.swap(next);
    }
    std::string prefixed, byte_level;
    std::vector<std::string_view> words;
    for (auto piece : pieces) {
      if (add_prefix_space && piece.front() != ' ') {
        prefixed.assign(" ");
        prefixed.append(piece);
        piece = prefixed;
      }
      words.clear();
      if (use_regex) {
        tok::gpt2_split(piece, words);
      } else {
        words.push_back(piece);
      }
      for (const auto word : words) {
        byte_level.clear();
        tok::byte_level_encode(word, byte_level);
        bpe.encode_word(byte_level, out);
      }
    }
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& tokenizer_json_path) {
  return Tokenizer(
      std::make_unique<Impl>(tok::parse_tokenizer_json(tokenizer_json_path), tokenizer_json_path));
}

std::vector<int32_t> Tokenizer::encode(const std::string& utf8) const {
  const size_t bad = tok::find_invalid_utf8(utf8);
  GPTQD_INPUT_CHECK(bad == std::string::npos,
                    "text to tokenize is not valid UTF-8: bad byte 0x{:02X} at offset {}",
                    static_cast<unsigned char>(utf8[bad]), bad);
  std::vector<int32_t> ids;
  ids.reserve(utf8.size() / 3 + 1);
  for (const auto& seg : impl_->added.split(utf8)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
    } else {
      impl_->encode_text(seg.text, ids);
    }
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string bytes;
  for (const int32_t id : ids) {
    const auto added = impl_->added_by_id.find(id);
    const std::string* token =
        added != impl_->added_by_id.end() ? &added->second : impl_->bpe.id_to_token(id);
    GPTQD_INPUT_CHECK(token != nullptr, "token id {} is not in the vocabulary of {} ({} tokens)",
                      id, impl_->path, impl_->vocab_size);
    tok::byte_level_decode(*token, bytes);
  }
  return tok::utf8_lossy(bytes);
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

}  // namespace gptqd
