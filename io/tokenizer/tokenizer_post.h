// What a tokenizer.json's post_processor adds around one sequence when HF encodes with
// add_special_tokens=True (TemplateProcessing's "single", RobertaProcessing's and BertProcessing's
// cls/sep, a Sequence of them; ByteLevel adds nothing). Internal to io/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptqd::tok {

struct SpecialTokenRef {
  std::string token;
  int32_t id = 0;
};

struct PostProcessor {
  std::vector<SpecialTokenRef> prefix;  // before the text's ids, in order
  std::vector<SpecialTokenRef> suffix;  // after them

  // "BOS <|begin_of_text|> (128000) prepended", "BOS <s> (0) prepended, EOS </s> (2) appended",
  // "no BOS/EOS added"; several tokens on one side are listed in order.
  std::string summary() const;
};

}  // namespace gptqd::tok
