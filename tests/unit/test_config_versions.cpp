// config.json as transformers 4.x and 5.x write it (issue 20 item 6). The 5.x files in
// tests/fixtures/families/tf5_<case>/config.json were saved by transformers 5.25.0 from the 4.x
// fixtures of the same case (scripts/make_tf5_configs.py says how); they moved rope_theta and
// rope_scaling into one rope_parameters object, write dtype instead of torch_dtype, and spell out
// tie_word_embeddings and pad_token_id. gptqd must read both into the same ModelConfig; the
// forward on the 5.x files is checked against transformers in test_family_forward.cpp.
//
// And the rule behind it: a key gptqd neither reads nor lists as harmless is refused, naming it.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/check.h"
#include "io/model/config_json.h"
#include "io/model/model_config.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

std::string read_text(const std::string& rel) {
  std::ifstream f(test::source_path(rel));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ModelConfig parse_file(const std::string& rel) { return parse_model_config(read_text(rel), rel); }

ModelConfig parse_json(const nlohmann::json& j) {
  return parse_model_config(j.dump(), "config.json");
}

std::string input_error_of(const nlohmann::json& j) {
  try {
    parse_json(j);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// Every field the pipeline reads (all but the verbatim json).
void expect_same_config(const ModelConfig& a, const ModelConfig& b, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.n_layer, b.n_layer);
  EXPECT_EQ(a.hidden, b.hidden);
  EXPECT_EQ(a.n_head, b.n_head);
  EXPECT_EQ(a.n_kv_head, b.n_kv_head);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.ffn, b.ffn);
  EXPECT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.apply_residual_connection_post_layernorm, b.apply_residual_connection_post_layernorm);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
  EXPECT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
  EXPECT_EQ(a.rope_scaling.low_freq_factor, b.rope_scaling.low_freq_factor);
  EXPECT_EQ(a.rope_scaling.high_freq_factor, b.rope_scaling.high_freq_factor);
  EXPECT_EQ(a.rope_scaling.original_max_position_embeddings,
            b.rope_scaling.original_max_position_embeddings);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.o_bias, b.o_bias);
  EXPECT_EQ(a.mlp_bias, b.mlp_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.do_layer_norm_before, b.do_layer_norm_before);
  EXPECT_EQ(a.enable_bias, b.enable_bias);
  EXPECT_EQ(a.final_layer_norm, b.final_layer_norm);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
}

class ConfigVersions : public ::testing::TestWithParam<std::string> {};

TEST_P(ConfigVersions, Transformers5FileReadsAsThe4xFile) {
  const std::string c = GetParam();
  const ModelConfig v4 = parse_file("tests/fixtures/families/" + c + "/config.json");
  const ModelConfig v5 = parse_file("tests/fixtures/families/tf5_" + c + "/config.json");
  const nlohmann::json j5 = nlohmann::json::parse(v5.json);
  EXPECT_EQ(j5.at("transformers_version").get<std::string>().substr(0, 2), "5.") << c;
  expect_same_config(v4, v5, c);
}

INSTANTIATE_TEST_SUITE_P(Families, ConfigVersions,
                         ::testing::Values("llama_gqa", "llama3_rope", "llama_linear", "mistral",
                                           "qwen2", "qwen3", "opt_pre", "opt_post"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(ConfigVersions, TinyBloom5xReadsAsShipped) {
  const ModelConfig v4 = parse_file("models/tiny-bloom/config.json");
  const ModelConfig v5 = parse_file("tests/fixtures/families/tf5_tiny_bloom/config.json");
  ModelConfig v5_dtype = v5;
  v5_dtype.torch_dtype = v4.torch_dtype;  // 5.x writes dtype; the values agree (float32)
  EXPECT_EQ(v5.torch_dtype, "float32");
  expect_same_config(v4, v5_dtype, "tiny-bloom");
}

// What makes the 5.x files matter: without rope_parameters the theta falls back to 10000 and the
// scaling to none, as a 4.x reader (and gptqd before this change) read them.
TEST(ConfigVersions, RopeParametersCarryThetaAndScaling) {
  const ModelConfig q2 = parse_file("tests/fixtures/families/tf5_qwen2/config.json");
  EXPECT_EQ(q2.rope_theta, 1e6);
  const ModelConfig l3 = parse_file("tests/fixtures/families/tf5_llama3_rope/config.json");
  EXPECT_EQ(l3.rope_theta, 5e5);
  EXPECT_EQ(l3.rope_scaling.type, RopeType::kLlama3);
  EXPECT_EQ(l3.rope_scaling.factor, 8);
  // Control: the same file without the object reads as another model.
  nlohmann::json j = nlohmann::json::parse(q2.json);
  j.erase("rope_parameters");
  EXPECT_EQ(parse_json(j).rope_theta, 10000);
}

TEST(ConfigVersions, Legacy4xScalingWinsOverRopeParametersAsIn5x) {
  nlohmann::json j = nlohmann::json::parse(
      parse_file("tests/fixtures/families/tf5_llama_linear/config.json").json);
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  j["rope_theta"] = 20000.0;
  const ModelConfig c = parse_json(j);
  EXPECT_EQ(c.rope_scaling.factor, 2);
  EXPECT_EQ(c.rope_theta, 20000);  // the legacy object has no theta: the top-level one
}

TEST(ConfigVersions, Llama3WithoutOriginalMaxFallsBackTo5xRule) {
  nlohmann::json j =
      nlohmann::json::parse(parse_file("tests/fixtures/families/tf5_llama3_rope/config.json").json);
  j["rope_parameters"].erase("original_max_position_embeddings");
  j["max_position_embeddings"] = 96;
  EXPECT_EQ(parse_json(j).rope_scaling.original_max_position_embeddings, 96);
}

TEST(ConfigVersions, Qwen3HeadDimDefaultsTo128) {
  nlohmann::json j =
      nlohmann::json::parse(parse_file("tests/fixtures/families/tf5_qwen3/config.json").json);
  j.erase("head_dim");
  EXPECT_EQ(parse_json(j).head_dim, 128);
}

// ---- sliding windows: which layers slide, as Qwen2/Qwen3 decide it ----------------------------

nlohmann::json qwen2_json() {
  return nlohmann::json::parse(parse_file("tests/fixtures/families/tf5_qwen2/config.json").json);
}

TEST(ConfigVersions, QwenSlidingWindowFollowsLayerTypesAndMaxWindowLayers) {
  nlohmann::json j = qwen2_json();
  j["use_sliding_window"] = true;
  j["sliding_window"] = 16;
  j["layer_types"] = {"full_attention", "sliding_attention"};
  EXPECT_EQ(parse_json(j).sliding_window, 16);
  j["layer_types"] = {"full_attention", "full_attention"};
  EXPECT_EQ(parse_json(j).sliding_window, 0) << "no layer slides";
  j.erase("layer_types");
  j["max_window_layers"] = 2;  // layers >= 2 slide: none of 2
  EXPECT_EQ(parse_json(j).sliding_window, 0);
  j["max_window_layers"] = 1;
  EXPECT_EQ(parse_json(j).sliding_window, 16);
  j["use_sliding_window"] = false;
  EXPECT_EQ(parse_json(j).sliding_window, 0);
  j["layer_types"] = {"full_attention", "sliding_attention"};
  EXPECT_NE(input_error_of(j).find("use_sliding_window is false"), std::string::npos)
      << input_error_of(j);
  j["layer_types"] = {"full_attention", "chunked_attention"};
  EXPECT_NE(input_error_of(j).find("chunked_attention"), std::string::npos);
}

// ---- unknown keys ------------------------------------------------------------------------------

TEST(ConfigKeys, UnknownKeyIsRefusedNamingIt) {
  for (const char* key :
       {"partial_rotary_factor", "quantization_config", "attn_logit_softcapping"}) {
    nlohmann::json j = qwen2_json();
    j[key] = 1;
    const std::string e = input_error_of(j);
    EXPECT_NE(e.find(std::string("key '") + key + "'"), std::string::npos) << e;
    EXPECT_NE(e.find("model_type qwen2"), std::string::npos) << e;
  }
  nlohmann::json b = nlohmann::json::parse(read_text("models/tiny-bloom/config.json"));
  b["alibi_bias_max"] = 8;
  EXPECT_NE(input_error_of(b).find("'alibi_bias_max'"), std::string::npos);
  nlohmann::json o =
      nlohmann::json::parse(read_text("tests/fixtures/families/opt_pre/config.json"));
  o["rotary"] = true;
  EXPECT_NE(input_error_of(o).find("'rotary'"), std::string::npos);
}

TEST(ConfigKeys, UnknownKeyInsideRopeObjectIsRefused) {
  nlohmann::json j = qwen2_json();
  j["rope_parameters"]["partial_rotary_factor"] = 0.5;
  EXPECT_NE(input_error_of(j).find("'partial_rotary_factor'"), std::string::npos)
      << input_error_of(j);
  j = qwen2_json();
  j["rope_parameters"]["rope_type"] = "yarn";
  EXPECT_NE(input_error_of(j).find("rope_parameters type 'yarn' is not supported"),
            std::string::npos)
      << input_error_of(j);
}

// Control: the harmless keys (the shared list and a family's own) are read without complaint.
TEST(ConfigKeys, HarmlessKeysAreAccepted) {
  nlohmann::json j = qwen2_json();
  j["use_cache"] = false;
  j["output_hidden_states"] = true;
  j["id2label"] = {{"0", "LABEL_0"}};
  EXPECT_EQ(input_error_of(j), "");
  nlohmann::json b = nlohmann::json::parse(read_text("models/tiny-bloom/config.json"));
  b["masked_softmax_fusion"] = true;
  b["n_inner"] = nullptr;
  EXPECT_EQ(input_error_of(b), "");
  b["tie_word_embeddings"] = false;
  EXPECT_NE(input_error_of(b).find("tie_word_embeddings false"), std::string::npos);
}

}  // namespace
}  // namespace gptqd
