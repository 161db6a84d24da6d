// BLOOM names, config.json parsing and HF checkpoint directories (single file,
// sharded with an index, with and without the "transformer." prefix), built
// here as tiny models whose names and shapes are spelled out independently.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "io/model/hf_model.h"
#include "base/check.h"
#include "tests/test_util.h"

namespace gptqd {
namespace {

namespace fs = std::filesystem;

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << p;
}

// Runs `fn`, expecting an InputError whose one-line message contains every `needle`.
template <typename Fn>
void expect_input_error(Fn&& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    FAIL() << "no error; expected one mentioning " << needles[0];
  } catch (const InputError& e) {
    const std::string msg = e.what();
    for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// ---- names ------------------------------------------------------------------

TEST(HfModelNames, CanonicalNamesAndLinearOrder) {
  ModelConfig c;
  c.family = Family::kBloom;
  c.n_layer = 2;
  c.hidden = 8;
  c.n_head = 2;
  c.head_dim = 4;
  c.ffn = 32;
  c.vocab = 16;
  const ModelSpec s = ModelSpec::of(c);
  EXPECT_EQ(s.block_tensor_name(3, "self_attention.query_key_value.weight"),
            "h.3.self_attention.query_key_value.weight");
  ASSERT_EQ(s.linears.size(), 4u);
  EXPECT_EQ(s.linears[0].module, "self_attention.query_key_value");
  EXPECT_EQ(s.linears[1].module, "self_attention.dense");
  EXPECT_EQ(s.linears[2].module, "mlp.dense_h_to_4h");
  EXPECT_EQ(s.linears[3].module, "mlp.dense_4h_to_h");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(s.linears[i].group, i) << "BLOOM: one layer per group";
  EXPECT_EQ(s.embedding[0].name, "word_embeddings.weight");
  EXPECT_EQ(s.embedding[1].name, "word_embeddings_layernorm.weight");
  EXPECT_EQ(s.embedding[2].name, "word_embeddings_layernorm.bias");
  EXPECT_EQ(s.final_norm[0].name, "ln_f.weight");
  EXPECT_EQ(s.final_norm[1].name, "ln_f.bias");
  EXPECT_EQ(s.lm_head, "") << "BLOOM's head is tied";

  std::vector<std::string> all;
  for (const TensorSpec& t : s.all_tensors()) all.push_back(t.name);
  ASSERT_EQ(all.size(), 3u + 2 * 12 + 2);
  EXPECT_EQ(all.front(), "word_embeddings.weight");
  EXPECT_EQ(all.back(), "ln_f.bias");
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size());

  EXPECT_EQ(s.canonical("transformer.h.0.input_layernorm.bias"), "h.0.input_layernorm.bias");
  EXPECT_EQ(s.canonical("h.0.input_layernorm.bias"), "h.0.input_layernorm.bias");
  EXPECT_EQ(s.canonical("lm_head.weight"), "lm_head.weight");
  EXPECT_EQ(s.hf_name("h.0.input_layernorm.bias"), "transformer.h.0.input_layernorm.bias");
}

// ---- config.json ------------------------------------------------------------

// bigscience/bloom's config.json (legacy spellings n_embed / n_layer /
// num_attention_heads, training-time keys that must be ignored).
const char* const kBloom176bConfig = R"({
  "apply_residual_connection_post_layernorm": false,
  "attention_dropout": 0.0,
  "architectures": ["BloomForCausalLM"],
  "attention_softmax_in_fp32": true,
  "pad_token_id": 3,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_dropout": 0.0,
  "initializer_range": 0.02,
  "layer_norm_epsilon": 1e-05,
  "masked_softmax_fusion": true,
  "model_type": "bloom",
  "n_embed": 14336,
  "n_layer": 70,
  "num_attention_heads": 112,
  "pretraining_tp": 4,
  "slow_but_exact": false,
  "transformers_version": "4.21.0",
  "use_cache": true,
  "vocab_size": 250880
})";

TEST(HfModelConfig, ParsesReleasedBloom176bLegacySpelling) {
  const ModelConfig c = parse_model_config(kBloom176bConfig, "bloom/config.json");
  EXPECT_EQ(c.n_layer, 70);
  EXPECT_EQ(c.hidden, 14336);
  EXPECT_EQ(c.n_head, 112);
  EXPECT_EQ(c.vocab, 250880);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.ffn, 57344);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
  EXPECT_FALSE(c.apply_residual_connection_post_layernorm);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.pad_token_id, 3);
  EXPECT_EQ(c.torch_dtype, "");
  EXPECT_EQ(c.json, kBloom176bConfig);
}

TEST(HfModelConfig, ParsesModernSpellingAndDefaults) {
  const ModelConfig c = parse_model_config(
      R"({"num_hidden_layers": 24, "hidden_size": 1024, "n_head": 16, "vocab_size": 250880,
          "torch_dtype": "float16", "pad_token_id": null, "apply_residual_connection_post_layernorm": true})",
      "x");
  EXPECT_EQ(c.n_layer, 24);
  EXPECT_EQ(c.hidden, 1024);
  EXPECT_EQ(c.n_head, 16);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.torch_dtype, "float16");
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
  EXPECT_EQ(c.pad_token_id, 3);
  EXPECT_TRUE(c.apply_residual_connection_post_layernorm);
  // Both spellings present and equal is fine.
  EXPECT_EQ(parse_model_config(R"({"n_layer":2,"num_hidden_layers":2,"hidden_size":8,"n_embed":8,
                                   "n_head":2,"num_attention_heads":2,"vocab_size":4})",
                               "x")
                .n_layer,
            2);
}

TEST(HfModelConfig, MissingKeysNameBothSpellings) {
  const std::map<std::string, std::string> without = {
      {"n_layer", R"({"hidden_size":8,"n_head":2,"vocab_size":4})"},
      {"hidden_size", R"({"n_layer":1,"n_head":2,"vocab_size":4})"},
      {"n_head", R"({"n_layer":1,"hidden_size":8,"vocab_size":4})"},
      {"vocab_size", R"({"n_layer":1,"hidden_size":8,"n_head":2})"},
  };
  const std::map<std::string, std::string> expected = {
      {"n_layer", "missing key 'n_layer' (or 'num_hidden_layers')"},
      {"hidden_size", "missing key 'hidden_size' (or 'n_embed')"},
      {"n_head", "missing key 'n_head' (or 'num_attention_heads')"},
      {"vocab_size", "missing key 'vocab_size'"},
  };
  for (const auto& [key, text] : without) {
    expect_input_error([&] { parse_model_config(text, "/m/config.json"); },
                       {"/m/config.json: ", expected.at(key)});
  }
}

TEST(HfModelConfig, RejectsBadValues) {
  const std::string src = "/m/config.json";
  auto bad = [&](const std::string& text, const std::vector<std::string>& needles) {
    std::vector<std::string> all = needles;
    all.push_back(src);
    expect_input_error([&] { parse_model_config(text, src); }, all);
  };
  bad(R"({"n_layer":2,"num_hidden_layers":3,"hidden_size":8,"n_head":2,"vocab_size":4})",
      {"'n_layer' (2) and 'num_hidden_layers' (3) disagree"});
  bad(R"({"n_layer":2,"hidden_size":10,"n_head":4,"vocab_size":4})",
      {"hidden size 10 is not divisible by the number of heads 4"});
  bad(R"({"n_layer":"2","hidden_size":8,"n_head":2,"vocab_size":4})", {"'n_layer' is string"});
  bad(R"({"n_layer":2.5,"hidden_size":8,"n_head":2,"vocab_size":4})", {"'n_layer'", "integer"});
  bad(R"({"n_layer":0,"hidden_size":8,"n_head":2,"vocab_size":4})", {"'n_layer' is 0"});
  bad(R"({"n_layer":2,"hidden_size":8,"n_head":-2,"vocab_size":4})", {"'n_head' is -2"});
  bad(R"({"model_type":"gpt2","n_layer":2,"hidden_size":8,"n_head":2,"vocab_size":4})",
      {"model_type", "gpt2"});
  bad(R"({"n_layer":2,"hidden_size":8,"n_head":2,"vocab_size":4,"layer_norm_epsilon":"1e-5"})",
      {"'layer_norm_epsilon' is string"});
  bad(R"({"n_layer":2,"hidden_size":8,"n_head":2,"vocab_size":4,"eos_token_id":"2"})",
      {"'eos_token_id' is string"});
  bad(R"({"n_layer":2,"hidden_size":8,"n_head":2,"vocab_size":4,"n_layer":3})",
      {"duplicate key 'n_layer'"});
  bad("[1]", {"expected a JSON object"});
  bad(R"({"n_layer":2,)", {"invalid JSON"});
}

TEST(HfModelConfig, LoadNamesMissingFile) {
  const fs::path dir = test::scratch_dir("hf-noconfig");
  expect_input_error([&] { load_model_config(dir.string()); }, {(dir / "config.json").string()});
  fs::remove_all(dir);
}

TEST(HfModelConfig, ExpectedShapes) {
  ModelConfig c = parse_model_config(R"({"n_layer":2,"hidden_size":8,"n_head":2,"vocab_size":16})",
                                     "config.json");
  const ModelSpec s = ModelSpec::of(c);
  using S = std::vector<int64_t>;
  std::map<std::string, S> shape;
  for (const TensorSpec& t : s.all_tensors()) shape[t.name] = t.shape;
  EXPECT_EQ(shape.at("h.0.self_attention.query_key_value.weight"), (S{24, 8}));
  EXPECT_EQ(shape.at("h.0.self_attention.query_key_value.bias"), (S{24}));
  EXPECT_EQ(shape.at("h.0.self_attention.dense.weight"), (S{8, 8}));
  EXPECT_EQ(shape.at("h.0.mlp.dense_h_to_4h.weight"), (S{32, 8}));
  EXPECT_EQ(shape.at("h.0.mlp.dense_h_to_4h.bias"), (S{32}));
  EXPECT_EQ(shape.at("h.1.mlp.dense_4h_to_h.weight"), (S{8, 32}));
  EXPECT_EQ(shape.at("h.1.mlp.dense_4h_to_h.bias"), (S{8}));
  EXPECT_EQ(shape.at("h.1.post_attention_layernorm.bias"), (S{8}));
  EXPECT_EQ(shape.at("word_embeddings.weight"), (S{16, 8}));
  EXPECT_EQ(shape.at("ln_f.bias"), (S{8}));
  EXPECT_EQ(shape.count("h.2.mlp.dense_4h_to_h.weight"), 0u);  // block 2 of 2
  EXPECT_EQ(shape.count("lm_head.weight"), 0u);
}

// ---- directories --------------------------------------------------------------

const char* const kTinyConfig =
    R"({"model_type":"bloom","n_layer":2,"hidden_size":8,"n_head":2,"vocab_size":16,
        "layer_norm_epsilon":1e-5,"pretraining_tp":1,"slow_but_exact":false})";

// The tiny model's tensors and shapes, spelled out (hidden 8, ffn 32, vocab 16).
std::vector<std::pair<std::string, std::vector<int64_t>>> tiny_tensors() {
  std::vector<std::pair<std::string, std::vector<int64_t>>> t = {
      {"word_embeddings.weight", {16, 8}},
      {"word_embeddings_layernorm.weight", {8}},
      {"word_embeddings_layernorm.bias", {8}},
  };
  for (int b = 0; b < 2; ++b) {
    const std::string h = "h." + std::to_string(b) + ".";
    t.push_back({h + "input_layernorm.weight", {8}});
    t.push_back({h + "input_layernorm.bias", {8}});
    t.push_back({h + "self_attention.query_key_value.weight", {24, 8}});
    t.push_back({h + "self_attention.query_key_value.bias", {24}});
    t.push_back({h + "self_attention.dense.weight", {8, 8}});
    t.push_back({h + "self_attention.dense.bias", {8}});
    t.push_back({h + "post_attention_layernorm.weight", {8}});
    t.push_back({h + "post_attention_layernorm.bias", {8}});
    t.push_back({h + "mlp.dense_h_to_4h.weight", {32, 8}});
    t.push_back({h + "mlp.dense_h_to_4h.bias", {32}});
    t.push_back({h + "mlp.dense_4h_to_h.weight", {8, 32}});
    t.push_back({h + "mlp.dense_4h_to_h.bias", {8}});
  }
  t.push_back({"ln_f.weight", {8}});
  t.push_back({"ln_f.bias", {8}});
  return t;
}

int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

class HfModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir(std::string("hf-") +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    write_text(dir_ / "config.json", kTinyConfig);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes the tiny model: 2-D weights in BF16, vectors in F32, names prefixed
  // with `prefix`. shards == 1: model.safetensors; 2: the first half of the
  // tensors in shard 1, the rest in shard 2, plus the index. `skip` leaves
  // tensors out; `shape_override` writes a different shape for one tensor.
  // Fills expected_ with the fp32 values a reader must return.
  void write_model(const std::string& prefix, int shards, const std::set<std::string>& skip = {},
                   const std::pair<std::string, std::vector<int64_t>>& shape_override = {}) {
    const auto all = tiny_tensors();
    std::vector<std::vector<uint16_t>> bf16_store;
    std::vector<std::vector<float>> f32_store;
    bf16_store.reserve(all.size());
    f32_store.reserve(all.size());
    std::vector<std::vector<TensorOut>> per_shard(shards);
    std::string weight_map;
    for (size_t i = 0; i < all.size(); ++i) {
      const std::string& name = all[i].first;
      if (skip.count(name)) continue;
      std::vector<int64_t> shape =
          name == shape_override.first ? shape_override.second : all[i].second;
      const std::vector<float> v = test::random_vector(static_cast<size_t>(numel(shape)), 100 + i);
      const int s = shards == 1 ? 0 : (i < all.size() / 2 ? 0 : 1);
      if (shape.size() == 2) {
        bf16_store.emplace_back();
        std::vector<float> expect;
        for (float x : v) {
          bf16_store.back().push_back(f32_to_bf16(x));
          expect.push_back(bf16_to_f32(bf16_store.back().back()));
        }
        per_shard[s].push_back({prefix + name, DType::BF16, shape, bf16_store.back().data()});
        expected_[name] = expect;
      } else {
        f32_store.push_back(v);
        per_shard[s].push_back({prefix + name, DType::F32, shape, f32_store.back().data()});
        expected_[name] = v;
      }
      weight_map += fmt::format("{}\"{}{}\": \"{}\"", weight_map.empty() ? "" : ",", prefix, name,
                                shard_name(s));
    }
    if (shards == 1) {
      write_safetensors((dir_ / "model.safetensors").string(), per_shard[0]);
    } else {
      for (int s = 0; s < shards; ++s)
        write_safetensors((dir_ / shard_name(s)).string(), per_shard[s]);
      write_text(dir_ / "model.safetensors.index.json",
                 R"({"metadata": {"total_size": 1234}, "weight_map": {)" + weight_map + "}}");
    }
  }

  static std::string shard_name(int s) {
    return fmt::format("model-0000{}-of-00002.safetensors", s + 1);
  }

  // Rewrites the index with one entry's file replaced.
  void write_index_with(const std::string& tensor, const std::string& file) {
    std::string weight_map;
    const auto all = tiny_tensors();
    for (size_t i = 0; i < all.size(); ++i) {
      const std::string f = all[i].first == tensor ? file : shard_name(i < all.size() / 2 ? 0 : 1);
      weight_map += fmt::format("{}\"{}\": \"{}\"", weight_map.empty() ? "" : ",", all[i].first, f);
    }
    write_text(dir_ / "model.safetensors.index.json", R"({"weight_map": {)" + weight_map + "}}");
  }

  void expect_all_tensors_read(const HfModel& m) {
    for (const auto& [name, shape] : tiny_tensors()) {
      EXPECT_TRUE(m.has(name)) << name;
      EXPECT_EQ(m.read_f32(name, shape), expected_.at(name)) << name;
      const uint64_t elem = shape.size() == 2 ? 2 : 4;
      EXPECT_EQ(m.bytes_of(name), static_cast<uint64_t>(numel(shape)) * elem) << name;
    }
  }

  fs::path dir_;
  std::map<std::string, std::vector<float>> expected_;
};

TEST_F(HfModelTest, SingleFileWithoutPrefix) {
  write_model("", 1);
  const HfModel m = HfModel::open(dir_.string());
  EXPECT_EQ(m.dir(), dir_.string());
  EXPECT_EQ(m.config().n_layer, 2);
  EXPECT_EQ(m.config().hidden, 8);
  EXPECT_EQ(m.config().json, kTinyConfig);
  expect_all_tensors_read(m);
  EXPECT_EQ(m.tensor_names().size(), tiny_tensors().size());
  EXPECT_FALSE(m.has("lm_head.weight"));
  EXPECT_EQ(m.file_of("ln_f.bias"), (dir_ / "model.safetensors").string());
  EXPECT_EQ(m.info("h.1.self_attention.dense.weight").dtype, DType::BF16);
  m.validate_shapes();
}

TEST_F(HfModelTest, SingleFileWithTransformerPrefix) {
  write_model("transformer.", 1);
  const HfModel m = HfModel::open(dir_.string());
  expect_all_tensors_read(m);
  EXPECT_FALSE(m.has("transformer.ln_f.bias"));  // has() takes canonical names
  EXPECT_EQ(m.info("ln_f.bias").name, "transformer.ln_f.bias");
}

TEST_F(HfModelTest, ShardedWithIndexBothPrefixes) {
  for (const std::string prefix : {"", "transformer."}) {
    write_model(prefix, 2);
    HfModel m = HfModel::open(dir_.string());
    expect_all_tensors_read(m);
    EXPECT_EQ(m.file_of("word_embeddings.weight"), (dir_ / shard_name(0)).string());
    EXPECT_EQ(m.file_of("ln_f.weight"), (dir_ / shard_name(1)).string());
    HfModel moved = std::move(m);
    EXPECT_EQ(moved.config().vocab, 16);
  }
}

TEST_F(HfModelTest, ShardsOpenLazily) {
  write_model("", 2);
  // Corrupt the second shard: opening the directory and reading from the first
  // shard must not touch it; reading from it names it.
  write_text(dir_ / shard_name(1), "garbage");
  const HfModel m = HfModel::open(dir_.string());
  EXPECT_EQ(m.read_f32("word_embeddings.weight", {16, 8}), expected_.at("word_embeddings.weight"));
  expect_input_error([&] { m.read_f32("ln_f.weight", {8}); }, {(dir_ / shard_name(1)).string()});
}

TEST_F(HfModelTest, ShapeMismatchNamesTensorAndShapes) {
  write_model("", 1);
  const HfModel m = HfModel::open(dir_.string());
  expect_input_error(
      [&] {
        m.read_f32("h.0.self_attention.dense.weight", {24, 8});
      },
      {"'h.0.self_attention.dense.weight'", "expected shape [24, 8], got [8, 8]"});
}

TEST_F(HfModelTest, ValidateShapesCatchesVocabMismatch) {
  write_model("", 2, {}, {"word_embeddings.weight", {15, 8}});
  const HfModel m = HfModel::open(dir_.string());
  expect_input_error([&] { m.validate_shapes(); },
                     {"'word_embeddings.weight'", "expected shape [16, 8], got [15, 8]"});
}

TEST_F(HfModelTest, UnknownTensorNamesTensorAndDir) {
  write_model("", 1);
  const HfModel m = HfModel::open(dir_.string());
  expect_input_error(
      [&] {
        m.read_f32("h.7.self_attention.dense.weight", {8, 8});
      },
      {"'h.7.self_attention.dense.weight'", dir_.string()});
  expect_input_error([&] { m.bytes_of("lm_head.weight"); }, {"'lm_head.weight'", dir_.string()});
}

TEST_F(HfModelTest, MissingModelTensorFailsAtOpen) {
  write_model("", 2, {"h.1.mlp.dense_h_to_4h.bias"});
  expect_input_error([&] { HfModel::open(dir_.string()); },
                     {"'h.1.mlp.dense_h_to_4h.bias'", "missing", "model.safetensors.index.json"});
  fs::remove(dir_ / "model.safetensors.index.json");
  write_model("", 1, {"ln_f.weight"});
  expect_input_error([&] { HfModel::open(dir_.string()); },
                     {"'ln_f.weight'", "missing", "model.safetensors"});
}

TEST_F(HfModelTest, TensorMissingFromItsShard) {
  write_model("", 2);
  // The index claims ln_f.weight (really in shard 2) lives in shard 1.
  write_index_with("ln_f.weight", shard_name(0));
  const HfModel m = HfModel::open(dir_.string());
  expect_input_error(
      [&] {
        m.read_f32("word_embeddings.weight", {16, 8});
      },
      {"'ln_f.weight'", (dir_ / shard_name(0)).string(), "does not contain it"});
}

TEST_F(HfModelTest, IndexMustNameFilesInsideTheDirectory) {
  write_model("", 2);
  // Every bad name below resolves to an existing shard, so only the name rule rejects it.
  fs::create_directories(dir_ / "sub");
  fs::copy_file(dir_ / shard_name(0), dir_ / "sub" / shard_name(0));
  const std::vector<std::string> bads = {"../" + dir_.filename().string() + "/" + shard_name(0),
                                         (dir_ / shard_name(0)).string(), "sub/" + shard_name(0),
                                         "..", ""};
  for (const std::string& bad : bads) {
    write_index_with("h.0.input_layernorm.weight", bad);
    expect_input_error([&] { HfModel::open(dir_.string()); },
                       {"'h.0.input_layernorm.weight'", "'" + bad + "'", "not a plain file name"});
  }
  write_index_with("h.0.input_layernorm.weight", "model-00009-of-00009.safetensors");
  expect_input_error(
      [&] { HfModel::open(dir_.string()); },
      {"'h.0.input_layernorm.weight'", "model-00009-of-00009.safetensors", "does not exist"});
}

TEST_F(HfModelTest, MalformedIndex) {
  write_model("", 2);
  const std::string index = (dir_ / "model.safetensors.index.json").string();
  write_text(index, R"({"metadata": {}})");
  expect_input_error([&] { HfModel::open(dir_.string()); }, {index, "missing key 'weight_map'"});
  write_text(index, R"({"weight_map": {"ln_f.weight": 3}})");
  expect_input_error([&] { HfModel::open(dir_.string()); }, {index, "'ln_f.weight'", "number"});
  write_text(index, R"({"weight_map": {"ln_f.weight": "a", "ln_f.weight": "b"}})");
  expect_input_error([&] { HfModel::open(dir_.string()); }, {index, "duplicate key 'ln_f.weight'"});
}

TEST_F(HfModelTest, SameTensorWithAndWithoutPrefixIsAmbiguous) {
  const float x[8] = {};
  write_safetensors(
      (dir_ / "model.safetensors").string(),
      {{"ln_f.bias", DType::F32, {8}, x}, {"transformer.ln_f.bias", DType::F32, {8}, x}});
  expect_input_error([&] { HfModel::open(dir_.string()); },
                     {"'ln_f.bias'", "'transformer.ln_f.bias'", "appears twice"});
}

TEST_F(HfModelTest, NoWeightsFile) {
  expect_input_error([&] { HfModel::open(dir_.string()); },
                     {dir_.string(), "model.safetensors", "model.safetensors.index.json"});
}

}  // namespace
}  // namespace gptqd
