#include "io/tokenizer/tokenizer_post.h"

#include <spdlog/fmt/fmt.h>

namespace gptqd::tok {
namespace {

std::string list(const std::vector<SpecialTokenRef>& toks) {
  std::string out;
  for (const auto& t : toks) {
    if (!out.empty()) out += " ";
    out += fmt::format("{} ({})", t.token, t.id);
  }
  return out;
}

}  // namespace

std::string PostProcessor::summary() const {
  if (prefix.empty() && suffix.empty()) return "no BOS/EOS added";
  std::string out;
  if (!prefix.empty()) out = "BOS " + list(prefix) + " prepended";
  if (!suffix.empty()) out += (out.empty() ? "" : ", ") + ("EOS " + list(suffix) + " appended");
  return out;
}

}  // namespace gptqd::tok
