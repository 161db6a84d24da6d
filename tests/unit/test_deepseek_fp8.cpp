// DeepSeek-V3 / Kimi-K2 checkpoints stored in FP8 (e4m3fn weights with fp32 block scales,
// quantization_config quant_method fp8), read by HfModel with each linear dequantized per block.
// Fixtures: tests/fixtures/deepseek/fp8 (plain_q in FP8, weight_block_size [16, 12], short edge
// blocks, one module kept in bf16 by modules_to_not_convert) and tests/fixtures/deepseek/
// dequantized (the same model dequantized in numpy, asserted there equal to transformers'
// _dequantize_fp8_weight), made by scripts/make_deepseek_fp8_fixtures.py.
//
// The weights gptqd loads equal numpy's bit for bit, so the forward and logits of the two models
// are identical. Mutation controls: the scale grid transposed, shifted by one block, or the
// product rounded to bf16 miss the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/model/hf_model.h"
#include "kernels/fp8.h"
#include "tests/forward_golden.h"
#include "tests/test_util.h"
#include "worker/block_forward.h"
#include "worker/embedding.h"
#include "worker/model_weights.h"

namespace gptqd {
namespace {

std::string ds_dir(const std::string& name) {
  return test::source_path("tests/fixtures/deepseek/" + name);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(DeepseekFp8, LoadedWeightsEqualNumpyDequantizationBitForBit) {
  const HfModel fp8 = HfModel::open(ds_dir("fp8"));
  const HfModel deq = HfModel::open(ds_dir("dequantized"));
  EXPECT_TRUE(fp8.config().fp8.on);
  EXPECT_FALSE(deq.config().fp8.on);
  fp8.validate_shapes();
  int stored_fp8 = 0, edge = 0;
  for (const TensorSpec& t : fp8.spec().all_tensors()) {
    const bool is_fp8 = fp8.info(t.name).dtype == DType::F8_E4M3;
    stored_fp8 += is_fp8;
    edge += is_fp8 && (t.shape[0] % 16 != 0 || t.shape[1] % 12 != 0);
    EXPECT_TRUE(same_bits(fp8.read_f32(t.name, t.shape), deq.read_f32(t.name, t.shape))) << t.name;
  }
  // Every attention and expert linear of both blocks but the one modules_to_not_convert keeps.
  EXPECT_EQ(stored_fp8, 43);
  EXPECT_GT(edge, 20) << "the fixture should have short edge blocks";
  EXPECT_EQ(fp8.info("layers.1.mlp.shared_experts.down_proj.weight").dtype, DType::BF16);
}

// Embeddings, every block and the logits of the C++ forward on the same ids.
test::Trace forward(Backend& be, const HfModel& m, const std::vector<int32_t>& ids, int64_t batch,
                    int64_t seq) {
  const ModelSpec& d = m.spec();
  const int64_t tokens = batch * seq;
  test::Trace tr;
  const EmbeddingWeights emb = load_embedding_weights(be, m, d);
  Buffer h(be, tokens * d.hidden);
  embed_tokens(be, d, emb, ids, seq, h.data());
  tr.embeddings = h.to_host();
  BlockWorkspace ws(be, d, tokens);
  for (int64_t b = 0; b < d.n_layer; ++b) {
    const BlockWeights w = load_block_weights(be, m, d, b);
    block_forward(be, d.block(b), w, batch, seq, h.data(), ws);
    tr.blocks.push_back(h.to_host());
  }
  const FinalNormWeights fin = load_final_norm_weights(be, m, d);
  Buffer normed(be, tokens * d.hidden), logits(be, tokens * d.vocab);
  lm_head(be, d, fin, emb, tokens, h.data(), normed.data(), logits.data());
  tr.logits = logits.to_host();
  return tr;
}

TEST(DeepseekFp8, ForwardAndLogitsEqualTheDequantizedCopy) {
  const HfModel fp8 = HfModel::open(ds_dir("fp8"));
  const HfModel deq = HfModel::open(ds_dir("dequantized"));
  const int64_t batch = 2, seq = 13;
  std::vector<int32_t> ids(batch * seq);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 37 + 11) % 160);
  auto be = make_cpu_backend(1);
  const test::Trace a = forward(*be, fp8, ids, batch, seq);
  const test::Trace b = forward(*be, deq, ids, batch, seq);
  EXPECT_TRUE(same_bits(a.embeddings, b.embeddings));
  ASSERT_EQ(a.blocks.size(), b.blocks.size());
  for (size_t i = 0; i < a.blocks.size(); ++i)
    EXPECT_TRUE(same_bits(a.blocks[i], b.blocks[i])) << "block " << i;
  EXPECT_TRUE(same_bits(a.logits, b.logits));
  // Not vacuous: the FP8 model is not the fp32 original it was made from.
  const HfModel orig = HfModel::open(ds_dir("plain_q"));
  EXPECT_GT(test::rel_err(forward(*be, orig, ids, batch, seq).logits, a.logits), 1e-3);
}

// The FP8 fixture with its config.json's quantization_config edited by `edit`; the InputError
// that HfModel::open, validate_shapes and reading every tensor give, "" if none.
std::string refusal_with(const std::string& name,
                         const std::function<void(nlohmann::json&)>& edit) {
  namespace fs = std::filesystem;
  const fs::path dir = test::scratch_dir("fp8-" + name);
  fs::copy_file(ds_dir("fp8") + "/model.safetensors", dir / "model.safetensors");
  std::ifstream in(ds_dir("fp8") + "/config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json c = nlohmann::json::parse(ss.str());
  edit(c["quantization_config"]);
  std::ofstream(dir / "config.json") << c.dump(2);
  std::string error;
  try {
    const HfModel m = HfModel::open(dir.string());
    m.validate_shapes();
    for (const TensorSpec& t : m.spec().all_tensors()) m.read_f32(t.name, t.shape);
  } catch (const InputError& e) {
    error = e.what();
  }
  fs::remove_all(dir);
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  return error;
}

TEST(DeepseekFp8, FilesThatDisagreeWithTheirConfigAreRefusedNamingTheTensor) {
  EXPECT_EQ(refusal_with("unchanged", [](nlohmann::json&) {}), "");
  // modules_to_not_convert keeps an FP8 module unquantized.
  EXPECT_NE(refusal_with("kept",
                         [](nlohmann::json& q) {
                           q["modules_to_not_convert"].push_back("model.layers.0.self_attn");
                         })
                .find("tensor 'model.layers.0.self_attn.q_proj.weight' is stored as F8_E4M3, "
                      "but quantization_config.modules_to_not_convert keeps module "
                      "'model.layers.0.self_attn.q_proj' unquantized (pattern "
                      "'model.layers.0.self_attn')"),
            std::string::npos);
  // A linear stored in bf16 that modules_to_not_convert does not list.
  EXPECT_NE(refusal_with("unlisted", [](nlohmann::json& q) { q.erase("modules_to_not_convert"); })
                .find("tensor 'model.layers.1.mlp.shared_experts.down_proj.weight' is stored as "
                      "BF16, but config.json's quantization_config (quant_method fp8) stores "
                      "every linear in F8_E4M3"),
            std::string::npos);
  // Scales that do not fit the configured block (here 16 x 16 instead of 16 x 12).
  EXPECT_NE(refusal_with("block",
                         [](nlohmann::json& q) {
                           q["weight_block_size"] = {16, 16};
                         })
                .find("_scale_inv': expected shape"),
            std::string::npos);
}

// The e4m3fn code nearest to v (|v| <= 448), ties to the even code: the finite codes searched.
uint8_t nearest_e4m3fn(float v) {
  uint8_t best = 0;
  for (uint8_t c = 1; c < 0x7f; ++c) {  // 0x7f is NaN
    const float d = std::fabs(e4m3fn_to_f32(c) - std::fabs(v)),
                b = std::fabs(e4m3fn_to_f32(best) - std::fabs(v));
    if (d < b || (d == b && (c & 1) == 0)) best = c;
  }
  return static_cast<uint8_t>(best | (v < 0 ? 0x80 : 0));
}

// tests/fixtures/deepseek/dense_first (first_k_dense_replace 1: block 0 a DeepseekV3MLP, blocks 1
// and 2 MoE) stored as the released files are: every linear of every block's own kind F8_E4M3
// with fp32 scales of 16 x 12 blocks (amax / 448, as DeepSeek quantizes), the rest as the fixture
// stores it, quantization_config quant_method fp8; except `unquantized`, left F32. `deq` gets the
// same model with those weights dequantized here, float(code) * scale in fp32, and no
// quantization_config. Returns the number of FP8 weights.
int write_fp8_dense_first(const std::filesystem::path& fp8, const std::filesystem::path& deq,
                          const std::string& unquantized = "") {
  const HfModel src = HfModel::open(ds_dir("dense_first"));
  const ModelSpec& d = src.spec();
  std::set<std::string> linears;
  for (int64_t b = 0; b < d.n_layer; ++b)
    for (const LinearSpec& l : d.block(b).linears)
      linears.insert(d.block_tensor_name(b, l.module + ".weight"));
  const SafetensorsFile f = SafetensorsFile::open(ds_dir("dense_first") + "/model.safetensors");
  const int64_t br = 16, bc = 12;
  std::vector<std::vector<uint8_t>> codes;
  std::vector<std::vector<float>> floats;  // scales and dequantized weights
  codes.reserve(f.tensors().size());
  floats.reserve(2 * f.tensors().size());
  std::vector<TensorOut> out8, outd;
  for (const TensorInfo& t : f.tensors()) {
    if (!linears.count(d.canonical(t.name)) || t.name == unquantized) {
      out8.push_back({t.name, t.dtype, t.shape, f.data(t)});
      outd.push_back(out8.back());
      continue;
    }
    const std::vector<float> w = f.read_f32(t.name);
    const int64_t rows = t.shape[0], cols = t.shape[1], gr = (rows + br - 1) / br,
                  gc = (cols + bc - 1) / bc;
    std::vector<float> scale(static_cast<size_t>(gr * gc), 0.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        float& s = scale[static_cast<size_t>(r / br * gc + c / bc)];
        s = std::max(s, std::fabs(w[static_cast<size_t>(r * cols + c)]));
      }
    for (float& s : scale) s = s > 0 ? s / 448.0f : 1.0f;
    std::vector<uint8_t> q(w.size());
    std::vector<float> back(w.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const size_t i = static_cast<size_t>(r * cols + c);
        const float s = scale[static_cast<size_t>(r / br * gc + c / bc)];
        q[i] = nearest_e4m3fn(std::min(448.0f, std::max(-448.0f, w[i] / s)));
        back[i] = e4m3fn_to_f32(q[i]) * s;
      }
    codes.push_back(std::move(q));
    floats.push_back(std::move(scale));
    out8.push_back({t.name, DType::F8_E4M3, t.shape, codes.back().data()});
    out8.push_back({t.name + "_scale_inv", DType::F32, {gr, gc}, floats.back().data()});
    floats.push_back(std::move(back));
    outd.push_back({t.name, DType::F32, t.shape, floats.back().data()});
  }
  std::ifstream in(ds_dir("dense_first") + "/config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json c = nlohmann::json::parse(ss.str());
  std::ofstream(deq / "config.json") << c.dump(2);
  c["quantization_config"] = {{"quant_method", "fp8"},
                              {"fmt", "e4m3"},
                              {"activation_scheme", "dynamic"},
                              {"weight_block_size", {br, bc}}};
  std::ofstream(fp8 / "config.json") << c.dump(2);
  write_safetensors((fp8 / "model.safetensors").string(), out8);
  write_safetensors((deq / "model.safetensors").string(), outd);
  return static_cast<int>(codes.size());
}

// The released files' layout: FP8 weights in dense first blocks and MoE blocks (each block's own
// linears). They load, every weight equal to its dequantization, and the forward equals the
// dequantized copy's bit for bit.
TEST(DeepseekFp8, DenseFirstBlocksInFp8EqualTheirDequantizedCopy) {
  const std::filesystem::path fp8 = test::scratch_dir("fp8-dense-first"),
                              deq = test::scratch_dir("fp8-dense-first-deq");
  // Block 0: the attention's 5 and gate, up, down; blocks 1, 2: 5, 6 experts x 3, shared 3.
  EXPECT_EQ(write_fp8_dense_first(fp8, deq), 8 + 2 * (5 + 6 * 3 + 3));
  const HfModel a = HfModel::open(fp8.string()), b = HfModel::open(deq.string());
  ASSERT_TRUE(a.spec().mixed());
  ASSERT_TRUE(a.config().fp8.on);
  a.validate_shapes();
  for (const TensorSpec& t : a.spec().all_tensors())
    EXPECT_TRUE(same_bits(a.read_f32(t.name, t.shape), b.read_f32(t.name, t.shape))) << t.name;
  const int64_t batch = 2, seq = 13;
  std::vector<int32_t> ids(batch * seq);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 37 + 11) % 160);
  auto be = make_cpu_backend(1);
  const test::Trace x = forward(*be, a, ids, batch, seq), y = forward(*be, b, ids, batch, seq);
  ASSERT_EQ(x.blocks.size(), 3u);
  for (size_t i = 0; i < x.blocks.size(); ++i)
    EXPECT_TRUE(same_bits(x.blocks[i], y.blocks[i])) << "block " << i;
  EXPECT_TRUE(same_bits(x.logits, y.logits));
  std::filesystem::remove_all(fp8);
  std::filesystem::remove_all(deq);
}

// Control: the dense block's own linears are checked too (a linear of block 0's DeepseekV3MLP
// stored unquantized is refused, naming it, as an expert's would be).
TEST(DeepseekFp8, DenseBlockLinearStoredUnquantizedIsRefused) {
  const std::filesystem::path fp8 = test::scratch_dir("fp8-dense-kept"),
                              deq = test::scratch_dir("fp8-dense-kept-deq");
  write_fp8_dense_first(fp8, deq, "model.layers.0.mlp.down_proj.weight");
  std::string error;
  try {
    HfModel::open(fp8.string()).validate_shapes();
  } catch (const InputError& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("tensor 'model.layers.0.mlp.down_proj.weight' is stored as F32, but "
                       "config.json's quantization_config (quant_method fp8) stores every linear"),
            std::string::npos)
      << error;
  std::filesystem::remove_all(fp8);
  std::filesystem::remove_all(deq);
}

// q_proj of block 0: 40 x 32, a 3 x 3 grid of 16 x 12 blocks (square, so a transposed grid has
// the right shape), the last row and column of blocks cut short.
struct Q {
  std::vector<uint8_t> codes;
  std::vector<float> scale, want;
};
Q q_proj() {
  const SafetensorsFile f = SafetensorsFile::open(ds_dir("fp8") + "/model.safetensors");
  const TensorInfo& w = *f.find("model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(w.shape, (std::vector<int64_t>{40, 32}));
  Q q;
  q.codes.assign(f.data(w), f.data(w) + w.nbytes());
  q.scale = f.read_f32("model.layers.0.self_attn.q_proj.weight_scale_inv");
  EXPECT_EQ(q.scale.size(), 9u);
  q.want =
      HfModel::open(ds_dir("dequantized")).read_f32("layers.0.self_attn.q_proj.weight", {40, 32});
  return q;
}

std::vector<float> dequant(const Q& q, const std::vector<float>& scale, bool round_bf16 = false) {
  std::vector<float> out(40 * 32);
  dequantize_fp8_blocks(q.codes.data(), 40, 32, scale.data(), 3, 3, 16, 12, round_bf16, out.data(),
                        "q_proj");
  return out;
}

TEST(DeepseekFp8Mutants, UnmutatedMatches) {
  const Q q = q_proj();
  EXPECT_TRUE(same_bits(dequant(q, q.scale), q.want));
}

TEST(DeepseekFp8Mutants, TransposedScaleGridFails) {
  const Q q = q_proj();
  std::vector<float> t(9);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) t[c * 3 + r] = q.scale[r * 3 + c];
  const double e = test::rel_err(dequant(q, t), q.want);
  EXPECT_GT(e, 1e-2);
  std::printf("[ mutant   ] transposed scale grid: relative error %.2e\n", e);
}

TEST(DeepseekFp8Mutants, ScaleOfTheNextBlockFails) {
  const Q q = q_proj();
  std::vector<float> shifted(9);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) shifted[r * 3 + c] = q.scale[r * 3 + (c + 1) % 3];
  const double e = test::rel_err(dequant(q, shifted), q.want);
  EXPECT_GT(e, 1e-2);
  std::printf("[ mutant   ] scale of the next column block: relative error %.2e\n", e);
}

TEST(DeepseekFp8Mutants, BlockSidesSwappedAreRefused) {
  const Q q = q_proj();
  std::vector<float> out(40 * 32);
  // 12 x 16 blocks need a 4 x 2 grid: the 3 x 3 one is refused naming the tensor.
  EXPECT_THROW(dequantize_fp8_blocks(q.codes.data(), 40, 32, q.scale.data(), 3, 3, 12, 16, false,
                                     out.data(), "q_proj"),
               InputError);
}

TEST(DeepseekFp8Mutants, RoundingToBf16IsNotBitExact) {
  const Q q = q_proj();
  EXPECT_FALSE(same_bits(dequant(q, q.scale, /*round_bf16=*/true), q.want));
}

}  // namespace
}  // namespace gptqd
