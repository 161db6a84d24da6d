#include "io/model/config_json.h"
#include "io/model/families/family_decl.h"
#include "io/model/json_strict.h"
#include "base/check.h"

namespace gptqd {

const std::vector<const FamilyDecl*>& all_families() {
  static const std::vector<const FamilyDecl*> kAll = {&bloom_family(), &llama_family(),
                                                      &opt_family()};
  return kAll;
}

const char* family_name(Family f) {
  switch (f) {
    case Family::kBloom:
      return "bloom";
    case Family::kLlama:
      return "llama";
    case Family::kOpt:
      return "opt";
  }
  return "?";
}

std::string supported_model_types() {
  std::string s;
  for (const FamilyDecl* f : all_families()) {
    for (const std::string& t : f->model_types) s += (s.empty() ? "" : ", ") + t;
  }
  return s;
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& src) {
  const nlohmann::json j = parse_json_strict(json_text, src);
  GPTQD_INPUT_CHECK(j.is_object(), "{}: expected a JSON object, got {}", src, json_type_name(j));
  // The original bigscience BLOOM files have no model_type.
  std::string type = "bloom";
  if (const auto mt = j.find("model_type"); mt != j.end()) {
    GPTQD_INPUT_CHECK(mt->is_string(), "{}: model_type is {}, expected a string", src,
                      json_type_name(*mt));
    type = mt->get<std::string>();
  }
  for (const FamilyDecl* f : all_families()) {
    for (const std::string& t : f->model_types) {
      if (t != type) continue;
      ModelConfig c = f->parse(j, type, src);
      c.model_type = type;
      c.family = f->family;
      c.json = json_text;
      return c;
    }
  }
  throw InputError(fmt::format("{}: model_type {} is not supported (supported: {})", src,
                               quote_name(type, 60), supported_model_types()));
}

ModelConfig load_model_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  return parse_model_config(read_small_file(path), path);
}

}  // namespace gptqd
