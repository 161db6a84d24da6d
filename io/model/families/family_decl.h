// The registry of model families: each io/model/families/<family>.cpp defines one FamilyDecl (how
// its config.json reads, what its checkpoint holds); registry.cpp lists them. Adding a family is
// one such file plus its forward in worker/families/.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/model/model_spec.h"

namespace gptqd {

struct FamilyDecl {
  Family family;
  std::vector<std::string> model_types;  // config.json model_type values it reads
  // Fills every field of the config from the JSON object (model_type already checked).
  ModelConfig (*parse)(const nlohmann::json& j, const std::string& model_type,
                       const std::string& src);
  // Fills the declarations of spec (spec.config and the copied shapes are set).
  void (*describe)(ModelSpec& spec);
  // Every config.json key that parse reads, in any spelling of transformers 4.x or 5.x.
  std::vector<std::string> reads;
  // This family's keys that cannot change the forward (beside kIgnoredConfigKeys). Any other key
  // is refused by parse_model_config: it may change the math, and an ignored key that does would
  // quantize a different model than the one the user has.
  std::vector<std::string> ignores;
};

// Keys of every family's config.json that cannot change the forward: names, versions,
// training-only settings (dropouts, initialisation), generation defaults, label maps.
extern const std::vector<std::string> kIgnoredConfigKeys;

const FamilyDecl& bloom_family();
const FamilyDecl& llama_family();
const FamilyDecl& opt_family();
// Mixtures of experts (io/model/families/moe.cpp): one Family::kMoe, one declaration per
// model_type, as their config keys differ.
const FamilyDecl& mixtral_family();
const FamilyDecl& qwen2_moe_family();
const FamilyDecl& qwen3_moe_family();
// DeepSeek-V3 / Kimi-K2 (io/model/families/deepseek.cpp): Family::kMoe with MLA attention
// (ModelConfig::mla), its own describe.
const FamilyDecl& deepseek_family();

// Every family, in the order the messages list them.
const std::vector<const FamilyDecl*>& all_families();

}  // namespace gptqd
