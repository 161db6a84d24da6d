// config.json of DeepSeek-V3 / Kimi-K2 (io/model/families/deepseek.cpp) as the released files
// (configs/models/deepseek-v3 and kimi-k2: transformers 4.x spellings, rope_scaling with "type":
// "yarn", topk_method, scoring_func, moe_layer_freq, num_nextn_predict_layers, FP8
// quantization_config, first_k_dense_replace 3 and 1) and transformers 5.25 (the fixtures'
// rope_parameters, dtype, head_dim and qk_head_dim written back) spell them. Every bad value is
// one InputError naming the key, before any work.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/check.h"
#include "io/model/fp8_config.h"
#include "io/model/model_config.h"
#include "io/model/model_spec.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream f(test::source_path(path));
  std::stringstream ss;
  ss << f.rdbuf();
  return json::parse(ss.str());
}
json fixture(const std::string& name) {
  return read_json("tests/fixtures/deepseek/" + name + "/config.json");
}
// A released config made simpler: no FP8 quantization_config, every block MoE (one kind).
json released(const std::string& name) {
  json j = read_json("configs/models/" + name + "/config.json");
  j.erase("quantization_config");
  j["first_k_dense_replace"] = 0;
  return j;
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

#define EXPECT_REFUSED(j, text)                                                               \
  do {                                                                                        \
    const std::string e_ = input_error_of(j);                                                 \
    EXPECT_NE(e_.find(text), std::string::npos) << "got: " << (e_.empty() ? "no error" : e_); \
    EXPECT_EQ(e_.find('\n'), std::string::npos) << "not one line: " << e_;                    \
  } while (0)

// The 4.x spelling of a 5.x fixture: rope_scaling with "type" and the top-level rope_theta,
// torch_dtype, the original code's keys, without the keys 5.x derives.
json as_4x(json j) {
  json rs = j["rope_parameters"];
  j["rope_theta"] = rs["rope_theta"];
  rs.erase("rope_theta");
  rs["type"] = rs["rope_type"];
  rs.erase("rope_type");
  j["rope_scaling"] = rs["type"] == "default" ? json(nullptr) : rs;
  j.erase("rope_parameters");
  j["torch_dtype"] = j["dtype"];
  j.erase("dtype");
  for (const char* k : {"head_dim", "qk_head_dim", "rope_interleave"}) j.erase(k);
  j["topk_method"] = "noaux_tc";
  j["scoring_func"] = "sigmoid";
  j["moe_layer_freq"] = 1;
  j["ep_size"] = 1;
  j["aux_loss_alpha"] = 0.001;
  j["seq_aux"] = true;
  j["num_nextn_predict_layers"] = 1;
  return j;
}

TEST(DeepseekConfig, Transformers4And5ReadTheSame) {
  for (const char* name : {"lora_yarn", "groups"}) {
    SCOPED_TRACE(name);
    const ModelConfig a = parse(fixture(name)), b = parse(as_4x(fixture(name)));
    EXPECT_EQ(a.family, Family::kMoe);
    EXPECT_EQ(a.model_type, "deepseek_v3");
    EXPECT_EQ(a.rope_theta, b.rope_theta);
    EXPECT_EQ(a.torch_dtype, b.torch_dtype);
    const MlaConfig &x = a.mla, &y = b.mla;
    EXPECT_EQ(x.q_lora_rank, y.q_lora_rank);
    EXPECT_EQ(x.kv_lora_rank, y.kv_lora_rank);
    EXPECT_EQ(x.qk_head_dim(), y.qk_head_dim());
    EXPECT_EQ(x.v_head_dim, y.v_head_dim);
    EXPECT_EQ(x.rope_interleave, y.rope_interleave) << "4.x: always interleaved";
    EXPECT_TRUE(x.yarn.on && y.yarn.on);
    EXPECT_EQ(x.yarn.factor, y.yarn.factor);
    EXPECT_EQ(x.yarn.mscale, y.yarn.mscale);
    EXPECT_EQ(x.yarn.mscale_all_dim, y.yarn.mscale_all_dim);
    EXPECT_EQ(x.yarn.beta_fast, y.yarn.beta_fast);
    EXPECT_EQ(x.yarn.original_max_position_embeddings, y.yarn.original_max_position_embeddings);
    EXPECT_EQ(x.yarn.truncate, y.yarn.truncate);
    EXPECT_EQ(x.n_group, y.n_group);
    EXPECT_EQ(x.topk_group, y.topk_group);
    EXPECT_EQ(x.routed_scaling_factor, y.routed_scaling_factor);
    EXPECT_EQ(a.n_experts, b.n_experts);
    EXPECT_EQ(a.shared_ffn, b.shared_ffn);
  }
  // q_lora_rank null and default RoPE (rope_scaling null in 4.x).
  const ModelConfig p = parse(as_4x(fixture("plain_q")));
  EXPECT_EQ(p.mla.q_lora_rank, 0);
  EXPECT_FALSE(p.mla.yarn.on);
}

TEST(DeepseekConfig, ReleasedDeepSeekV3AndKimiK2) {
  const ModelConfig d = parse(released("deepseek-v3"));
  EXPECT_EQ(d.n_layer, 61);
  EXPECT_EQ(d.mla.q_lora_rank, 1536);
  EXPECT_EQ(d.mla.kv_lora_rank, 512);
  EXPECT_EQ(d.mla.qk_head_dim(), 192);
  EXPECT_EQ(d.mla.v_head_dim, 128);
  EXPECT_EQ(d.n_experts, 256);
  EXPECT_EQ(d.experts_per_tok, 8);
  EXPECT_EQ(d.mla.n_group, 8);
  EXPECT_EQ(d.mla.topk_group, 4);
  EXPECT_EQ(d.mla.routed_scaling_factor, 2.5);
  EXPECT_EQ(d.shared_ffn, 2048);
  EXPECT_TRUE(d.mla.yarn.on);
  EXPECT_EQ(d.mla.yarn.factor, 40);
  EXPECT_EQ(d.mla.yarn.original_max_position_embeddings, 4096);
  EXPECT_EQ(d.mla.yarn.mscale_all_dim, 1.0);
  EXPECT_EQ(d.torch_dtype, "bfloat16");
  const ModelSpec s = ModelSpec::of(d);
  EXPECT_EQ(s.n_groups, 5);
  EXPECT_EQ(s.linears.size(), 5u + 3 * 256 + 3);
  const ModelConfig k = parse(released("kimi-k2"));
  EXPECT_EQ(k.model_type, "kimi_k2");
  EXPECT_EQ(k.n_experts, 384);
  EXPECT_EQ(k.mla.n_group, 1);
  EXPECT_EQ(k.mla.routed_scaling_factor, 2.827);
  EXPECT_EQ(k.mla.yarn.beta_fast, 1.0);
  EXPECT_EQ(k.rope_theta, 50000);
}

// The released files load as they are: FP8 quantization_config and dense first blocks, which
// are a second block kind (ModelSpec::kinds).
TEST(DeepseekConfig, ReleasedFilesLoadWithTheirDenseFirstBlocks) {
  json j = read_json("configs/models/deepseek-v3/config.json");
  EXPECT_EQ(input_error_of(j), "");
  const ModelSpec v3 = ModelSpec::of(parse(j));
  EXPECT_TRUE(v3.config.fp8.on);
  ASSERT_EQ(v3.n_kinds(), 2);
  EXPECT_EQ(v3.block_kind[2], 0);
  EXPECT_EQ(v3.block_kind[3], 1);
  EXPECT_TRUE(v3.block(0).dense_mlp);
  EXPECT_EQ(v3.block(0).linears.back().in, 18432);  // intermediate_size
  EXPECT_EQ(v3.block(3).linears.back().in, 2048);   // the shared expert's down, moe width
  j = read_json("configs/models/kimi-k2/config.json");
  EXPECT_EQ(input_error_of(j), "");
  const ModelSpec k2 = ModelSpec::of(parse(j));
  EXPECT_TRUE(k2.config.fp8.on);
  EXPECT_TRUE(k2.block(0).dense_mlp);
  EXPECT_FALSE(k2.block(1).dense_mlp);
}

// The released FP8 quantization_config (both files) is read; what gptqd cannot dequantize as the
// model's own code does is refused in one line naming the key.
TEST(DeepseekConfig, Fp8QuantizationConfigIsReadOrRefusedNamingTheKey) {
  for (const char* name : {"deepseek-v3", "kimi-k2"}) {
    const ModelConfig c = parse(read_json(std::string("configs/models/") + name + "/config.json"));
    EXPECT_TRUE(c.fp8.on) << name;
    EXPECT_EQ(c.fp8.block_rows, 128);
    EXPECT_EQ(c.fp8.block_cols, 128);
    EXPECT_TRUE(c.fp8.modules_to_not_convert.empty());
  }
  EXPECT_FALSE(parse(released("deepseek-v3")).fp8.on);
  json base = released("deepseek-v3");
  base["quantization_config"] = {{"quant_method", "fp8"},
                                 {"weight_block_size", {16, 12}},
                                 {"modules_to_not_convert", {"lm_head", "model.layers.1.mlp"}}};
  const ModelConfig c = parse(base);
  EXPECT_EQ(c.fp8.block_rows, 16);
  EXPECT_EQ(c.fp8.block_cols, 12);
  EXPECT_EQ(fp8_unconverted_by(c.fp8, "lm_head"), "lm_head");
  EXPECT_EQ(fp8_unconverted_by(c.fp8, "model.layers.1.mlp.experts.3.up_proj"),
            "model.layers.1.mlp");
  EXPECT_EQ(fp8_unconverted_by(c.fp8, "model.layers.11.mlp.experts.3.up_proj"), "");
  auto with = [&](const char* key, json v) {
    json j = base;
    j["quantization_config"][key] = v;
    return j;
  };
  EXPECT_REFUSED(with("quant_method", "gptq"), "quantization_config.quant_method is 'gptq'");
  EXPECT_REFUSED(with("fmt", "e5m2"), "quantization_config.fmt is 'e5m2'");
  EXPECT_REFUSED(with("activation_scheme", "static"), "quantization_config.activation_scheme");
  EXPECT_REFUSED(with("weight_block_size", {128}), "quantization_config.weight_block_size is");
  EXPECT_REFUSED(with("weight_block_size", {0, 128}), "quantization_config.weight_block_size is");
  EXPECT_REFUSED(with("weight_block_size", nullptr), "null, one scale per tensor, is not read");
  EXPECT_REFUSED(with("scale_fmt", "e4m3"), "quantization_config.scale_fmt");
  EXPECT_REFUSED(with("expert_dtype", "fp4"), "quantization_config.expert_dtype");
  EXPECT_REFUSED(with("modules_to_not_convert", "lm_head"), "expected a list of module names");
  EXPECT_REFUSED(with("input_scale", 1.0), "quantization_config key 'input_scale' is not known");
  EXPECT_NO_THROW(parse(with("scale_fmt", "ue8m0")));
}

TEST(DeepseekConfig, BadValuesAreOneLineNamingTheKey) {
  const json f = fixture("lora_yarn");  // 9 experts in 3 groups, top-3 of the best 2 groups
  auto with = [&](const char* key, json v) {
    json j = f;
    j[key] = v;
    return j;
  };
  EXPECT_EQ(input_error_of(f), "");
  EXPECT_REFUSED(with("num_experts_per_tok", 10), "num_experts_per_tok 10 is larger than the 9");
  EXPECT_REFUSED(with("topk_group", 4), "topk_group 4 must be between 1 and n_group 3");
  EXPECT_REFUSED(with("n_group", 2), "n_group 2 must divide n_routed_experts 9");
  EXPECT_REFUSED(with("n_group", 9),
                 "n_group 9 must divide n_routed_experts 9 into groups of at least 2");
  EXPECT_REFUSED(with("num_experts_per_tok", 7),
                 "num_experts_per_tok 7 is more than the 6 experts");
  EXPECT_REFUSED(with("moe_layer_freq", 2), "moe_layer_freq 2: transformers ignores it");
  EXPECT_REFUSED(with("first_k_dense_replace", -1), "first_k_dense_replace is -1");
  json dense0 = with("first_k_dense_replace", 1);
  dense0["intermediate_size"] = 0;
  EXPECT_REFUSED(dense0, "intermediate_size (their MLP's width) is 0");
  EXPECT_EQ(input_error_of(with("first_k_dense_replace", 1)), "");
  EXPECT_REFUSED(with("topk_method", "greedy"), "topk_method 'greedy' is not supported");
  EXPECT_REFUSED(with("scoring_func", "softmax"), "scoring_func 'softmax' is not supported");
  EXPECT_REFUSED(with("num_key_value_heads", 2), "num_key_value_heads 2 differs");
  EXPECT_REFUSED(with("head_dim", 16), "head_dim is 16, but qk_rope_head_dim is 8");
  EXPECT_REFUSED(with("qk_rope_head_dim", 7), "qk_rope_head_dim 7 must be even");
  EXPECT_REFUSED(with("hidden_act", "gelu"), "hidden_act 'gelu' is not supported");
  EXPECT_REFUSED(with("partial_rotary_factor", 0.5), "key 'partial_rotary_factor' is not known");
  EXPECT_REFUSED(with("routed_scaling_factor", -1), "routed_scaling_factor");
  json j = f;
  j.erase("q_lora_rank");
  EXPECT_REFUSED(j, "key 'q_lora_rank' is missing (a number, or null for a plain q_proj)");
  j = f;
  j["rope_parameters"]["rope_type"] = "llama3";
  EXPECT_REFUSED(j, "type 'llama3' is not supported for deepseek_v3 (supported: default, yarn)");
  j = f;
  j["rope_parameters"]["partial_rotary_factor"] = 0.5;
  EXPECT_REFUSED(j, "key 'partial_rotary_factor' is not used by rope type yarn");
  j = f;
  j["rope_parameters"].erase("factor");
  EXPECT_REFUSED(j, "yarn scaling needs 'factor'");
}

// Keys that do not change the forward (training losses, DeepSeek's expert-parallel size, the
// MTP layer count: those layers are not read) are accepted.
TEST(DeepseekConfig, HarmlessKeysAreAccepted) {
  json j = fixture("groups");
  j["aux_loss_alpha"] = 0.001;
  j["seq_aux"] = true;
  j["ep_size"] = 8;
  j["num_nextn_predict_layers"] = 1;
  j["router_aux_loss_coef"] = 0.01;
  EXPECT_EQ(input_error_of(j), "");
  j["model_type"] = "kimi_k2";
  EXPECT_EQ(parse(j).model_type, "kimi_k2");
}

}  // namespace
}  // namespace gptqd
