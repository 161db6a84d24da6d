#include <algorithm>

#include "base/check.h"
#include "io/model/config_json.h"
#include "io/model/families/family_decl.h"
#include "io/model/json_strict.h"

namespace gptqd {

const std::vector<std::string> kIgnoredConfigKeys = {
    // what the file is and who wrote it
    "_name_or_path", "architectures", "model_type", "transformers_version", "auto_map",
    "tokenizer_class", "prefix", "task_specific_params", "finetuning_task",
    // the KV cache, outputs and tracing switches of the Python classes
    "use_cache", "output_attentions", "output_hidden_states", "return_dict", "torchscript",
    "chunk_size_feed_forward", "gradient_checkpointing",
    // training only: initialisation and dropouts (eval mode has none)
    "initializer_range", "init_std", "attention_dropout", "hidden_dropout", "dropout",
    "activation_dropout", "layerdrop", "resid_pdrop", "embd_pdrop", "attn_pdrop",
    // classification heads and generation defaults (never part of the causal LM forward)
    "id2label", "label2id", "num_labels", "problem_type", "unk_token_id", "sep_token_id",
    "decoder_start_token_id", "max_length", "min_length", "do_sample", "early_stopping",
    "num_beams", "num_return_sequences", "temperature", "top_k", "top_p", "repetition_penalty",
    "length_penalty", "no_repeat_ngram_size", "bad_words_ids"};

const std::vector<const FamilyDecl*>& all_families() {
  static const std::vector<const FamilyDecl*> kAll = {
      &bloom_family(),     &llama_family(),     &opt_family(),     &mixtral_family(),
      &qwen2_moe_family(), &qwen3_moe_family(), &deepseek_family()};
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
    case Family::kMoe:
      return "moe";
  }
  return "?";
}

namespace {

bool contains(const std::vector<std::string>& v, const std::string& k) {
  return std::find(v.begin(), v.end(), k) != v.end();
}

// A key gptqd neither reads nor knows to be harmless is refused before anything else: silently
// ignoring it could quantize a different model than transformers runs (as transformers 5.x's
// rope_parameters did before gptqd read it: perplexity off by up to 1.2%, no warning).
void check_known_keys(const nlohmann::json& j, const FamilyDecl& f, const std::string& type,
                      const std::string& src) {
  for (const auto& [k, v] : j.items()) {
    if (contains(f.reads, k) || contains(f.ignores, k) || contains(kIgnoredConfigKeys, k)) continue;
    throw InputError(fmt::format(
        "{}: key {} is not known to gptqd for model_type {}: it may change the model's forward, "
        "so the model is refused rather than quantized without it (docs/model-families.md lists "
        "the keys gptqd reads and those it ignores)",
        src, quote_name(k, 60), type));
  }
}

}  // namespace

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
      check_known_keys(j, *f, type, src);
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
