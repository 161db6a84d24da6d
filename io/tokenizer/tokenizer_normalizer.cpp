// Normalizer steps on whole strings: the offsets HF tracks alongside do not change the ids.
#include "io/tokenizer/tokenizer_normalizer.h"

#include "io/tokenizer/tokenizer_nfc.h"

namespace gptqd::tok {

std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view text) {
  std::string cur(text), next;
  for (const auto& step : steps) {
    next.clear();
    switch (step.kind) {
      case NormalizerStep::Kind::kNfc:
        nfc_append(cur, next);
        break;
      case NormalizerStep::Kind::kPrepend:
        if (!cur.empty()) next = step.a;
        next.append(cur);
        break;
      case NormalizerStep::Kind::kReplace: {
        size_t from = 0;
        for (size_t at = cur.find(step.a); at != std::string::npos; at = cur.find(step.a, from)) {
          next.append(cur, from, at - from);
          next.append(step.b);
          from = at + step.a.size();
        }
        next.append(cur, from, std::string::npos);
        break;
      }
    }
    cur.swap(next);
  }
  return cur;
}

}  // namespace gptqd::tok
