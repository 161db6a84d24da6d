// config.json of the mixture-of-experts families as transformers 4.x and 5.x write them. The 5.x
// files are the fixtures' (tests/fixtures/moe/<case>/config.json, transformers 5.25.0,
// scripts/make_moe_fixtures.py); the 4.x spelling of the same model is made here by the moves
// 5.x made: rope_theta (and rope_scaling null) instead of rope_parameters, torch_dtype instead of
// dtype, Qwen3-MoE's num_experts instead of num_local_experts, Qwen2-MoE without qkv_bias (4.x
// always has q/k/v biases) and with max_window_layers. Both must read as the same ModelConfig.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/check.h"
#include "io/model/model_config.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

using nlohmann::json;

json fixture_config(const std::string& name) {
  std::ifstream f(test::source_path("tests/fixtures/moe/" + name + "/config.json"));
  std::stringstream ss;
  ss << f.rdbuf();
  return json::parse(ss.str());
}

ModelConfig parse(const json& j) { return parse_model_config(j.dump(), "config.json"); }

std::string input_error_of(const json& j) {
  try {
    parse(j);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

json as_4x(json j) {
  j["rope_theta"] = j["rope_parameters"]["rope_theta"];
  j["rope_scaling"] = nullptr;
  j.erase("rope_parameters");
  j["torch_dtype"] = j["dtype"];
  j.erase("dtype");
  const std::string type = j["model_type"];
  if (type == "qwen3_moe") {
    j["num_experts"] = j["num_local_experts"];
    j.erase("num_local_experts");
    j["max_window_layers"] = j["num_hidden_layers"];
  }
  if (type == "qwen2_moe") j.erase("qkv_bias");
  return j;
}

void expect_same_moe(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.family, Family::kMoe);
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.n_layer, b.n_layer);
  EXPECT_EQ(a.hidden, b.hidden);
  EXPECT_EQ(a.n_head, b.n_head);
  EXPECT_EQ(a.n_kv_head, b.n_kv_head);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.o_bias, b.o_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.n_experts, b.n_experts);
  EXPECT_EQ(a.experts_per_tok, b.experts_per_tok);
  EXPECT_EQ(a.moe_ffn, b.moe_ffn);
  EXPECT_EQ(a.shared_ffn, b.shared_ffn);
  EXPECT_EQ(a.norm_topk_prob, b.norm_topk_prob);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
}

TEST(MoeConfig, Transformers4And5ReadTheSame) {
  for (const char* name : {"mixtral", "qwen2_moe", "qwen3_moe"}) {
    SCOPED_TRACE(name);
    const json five = fixture_config(name);
    const ModelConfig a = parse(five);
    const ModelConfig b = parse(as_4x(five));
    expect_same_moe(a, b);
    EXPECT_EQ(a.rope_theta, 1e6);
    EXPECT_EQ(a.torch_dtype, "float32");
  }
  EXPECT_TRUE(parse(as_4x(fixture_config("qwen2_moe"))).qkv_bias) << "4.x Qwen2-MoE: always";
  EXPECT_EQ(parse(as_4x(fixture_config("qwen3_moe"))).n_experts, 7);
}

TEST(MoeConfig, BadValuesAreOneLineNamingTheKey) {
  json j = fixture_config("qwen3_moe");
  j["num_experts_per_tok"] = 8;
  EXPECT_NE(input_error_of(j).find("num_experts_per_tok 8 is larger than the 7 experts"),
            std::string::npos)
      << input_error_of(j);
  j = fixture_config("mixtral");
  j.erase("num_local_experts");
  EXPECT_NE(input_error_of(j).find("num_local_experts"), std::string::npos) << input_error_of(j);
  // Keys that change the routing (DeepSeek-V3's) are refused, not ignored.
  for (const char* key : {"routed_scaling_factor", "n_group", "topk_method"}) {
    j = fixture_config("qwen2_moe");
    j[key] = 2;
    const std::string e = input_error_of(j);
    EXPECT_NE(e.find(std::string("key '") + key + "' is not known"), std::string::npos) << e;
  }
  j = fixture_config("qwen3_moe");
  j["decoder_sparse_step"] = 0;
  EXPECT_NE(input_error_of(j).find("decoder_sparse_step is 0, expected >= 1"), std::string::npos)
      << input_error_of(j);
  j["decoder_sparse_step"] = 2;  // block 0 dense: a second block kind
  EXPECT_EQ(input_error_of(j), "");
  j["mlp_only_layers"] = "1";
  EXPECT_NE(input_error_of(j).find("mlp_only_layers is"), std::string::npos) << input_error_of(j);
  j = fixture_config("qwen2_moe");
  j["hidden_act"] = "gelu";
  EXPECT_NE(input_error_of(j).find("hidden_act 'gelu' is not supported"), std::string::npos)
      << input_error_of(j);
}

// Training-only keys do not change the forward and are accepted.
TEST(MoeConfig, TrainingKeysAreIgnored) {
  json j = fixture_config("mixtral");
  j["router_jitter_noise"] = 0.1;
  j["router_aux_loss_coef"] = 0.02;
  j["output_router_logits"] = true;
  EXPECT_EQ(input_error_of(j), "");
}

}  // namespace
}  // namespace gptqd
