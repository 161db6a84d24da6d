// The registry of model families: each io/model/families/<family>.cpp defines one FamilyDecl (how its
// config.json reads, what its checkpoint holds); registry.cpp lists them. Adding a family is one
// such file plus its forward in worker/families/.
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
};

const FamilyDecl& bloom_family();
const FamilyDecl& llama_family();
const FamilyDecl& opt_family();

// Every family, in the order the messages list them.
const std::vector<const FamilyDecl*>& all_families();

}  // namespace gptqd
