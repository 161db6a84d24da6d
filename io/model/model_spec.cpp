#include "io/model/model_spec.h"

#include <algorithm>

#include "base/check.h"
#include "io/model/families/family_decl.h"

namespace gptqd {

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

// Groups and inputs numbered from 0, contiguous, the layers of an input sharing it.
void finish_linears(ModelSpec& s) {
  const ModelConfig& c = s.config;
  GPTQD_CHECK(!s.linears.empty() && !s.embedding.empty(), "family {} declared no tensors",
              family_name(c.family));
  s.n_groups = s.linears.back().group + 1;
  for (LinearSpec& l : s.linears) {
    if (l.input < 0) l.input = l.group;
  }
  s.n_inputs = s.linears.back().input + 1;
  GPTQD_CHECK(s.linears[0].group == 0 && s.linears[0].input == 0,
              "family {}: the first linear must open group 0 and input 0", family_name(c.family));
  for (size_t i = 1; i < s.linears.size(); ++i) {
    const LinearSpec& a = s.linears[i - 1];
    const LinearSpec& b = s.linears[i];
    const int step = b.group - a.group;
    const int input_step = b.input - a.input;
    GPTQD_CHECK(step == 0 || step == 1, "family {}: linear groups must be contiguous",
                family_name(c.family));
    GPTQD_CHECK(input_step == 0 || input_step == 1, "family {}: linear inputs must be contiguous",
                family_name(c.family));
    GPTQD_CHECK(step == 0 || input_step == 1, "family {}: an input cannot span two groups",
                family_name(c.family));
    GPTQD_CHECK(input_step == 1 || (b.in == a.in && b.expert == a.expert),
                "family {}: the layers of an input must share it", family_name(c.family));
  }
}

}  // namespace

ModelSpec ModelSpec::of(const ModelConfig& c) {
  ModelSpec s;
  s.config = c;
  s.family = c.family;
  s.n_layer = c.n_layer;
  s.hidden = c.hidden;
  s.n_head = c.n_head;
  s.n_kv_head = c.n_kv_head > 0 ? c.n_kv_head : c.n_head;
  s.head_dim = c.head_dim;
  s.ffn = c.ffn;
  s.vocab = c.vocab;
  s.norm_eps = static_cast<float>(c.norm_eps);
  // The declaration that lists the model_type (DeepSeek-V3 has its own describe within kMoe),
  // else the family's first (several model_type declarations may share one family's describe).
  const FamilyDecl* decl = nullptr;
  for (const FamilyDecl* f : all_families()) {
    if (f->family != c.family) continue;
    const bool lists = std::find(f->model_types.begin(), f->model_types.end(), c.model_type) !=
                       f->model_types.end();
    if (decl == nullptr || lists) decl = f;
    if (lists) break;
  }
  const std::vector<bool>& dense = c.dense_mlp_blocks;
  GPTQD_CHECK(dense.empty() || static_cast<int64_t>(dense.size()) == c.n_layer,
              "{} dense-MLP flags for {} blocks", dense.size(), c.n_layer);
  auto kind_spec = [&](bool dense_mlp) {
    ModelSpec k = s;
    k.dense_mlp = dense_mlp;
    if (decl != nullptr) decl->describe(k);
    finish_linears(k);
    return k;
  };
  const bool first_dense = !dense.empty() && dense[0];
  ModelSpec out = kind_spec(first_dense);
  if (std::find(dense.begin(), dense.end(), !first_dense) == dense.end()) return out;
  // Kind 0 is block 0's, kind 1 the other MLP.
  out.kinds = {std::make_shared<const ModelSpec>(out),
               std::make_shared<const ModelSpec>(kind_spec(!first_dense))};
  out.block_kind.resize(dense.size());
  for (size_t b = 0; b < dense.size(); ++b) out.block_kind[b] = dense[b] == first_dense ? 0 : 1;
  return out;
}

const ModelSpec& ModelSpec::block(int64_t b) const {
  if (kinds.empty()) return *this;
  return *kinds[static_cast<size_t>(kind_of(b))];
}

const ModelSpec& ModelSpec::kind(int k) const {
  if (kinds.empty()) {
    GPTQD_CHECK(k == 0, "kind {} of a model with one block kind", k);
    return *this;
  }
  GPTQD_CHECK(k >= 0 && k < n_kinds(), "kind {} of {}", k, n_kinds());
  return *kinds[static_cast<size_t>(k)];
}

int ModelSpec::kind_of(int64_t b) const {
  if (kinds.empty()) return 0;
  GPTQD_CHECK(b >= 0 && b < static_cast<int64_t>(block_kind.size()), "block {} of {}", b,
              block_kind.size());
  return block_kind[static_cast<size_t>(b)];
}

std::string ModelSpec::block_tensor_name(int64_t block, const std::string& relative) const {
  return block_prefix + std::to_string(block) + "." + relative;
}

std::vector<TensorSpec> ModelSpec::block_tensors(int64_t block) const {
  const ModelSpec& k = this->block(block);
  std::vector<TensorSpec> out;
  for (const TensorSpec& t : k.block_norms)
    out.push_back({block_tensor_name(block, t.name), t.shape});
  for (const LinearSpec& l : k.linears) {
    out.push_back({block_tensor_name(block, l.module + ".weight"), {l.out, l.in}});
    if (l.bias) out.push_back({block_tensor_name(block, l.module + ".bias"), {l.out}});
  }
  return out;
}

int ModelSpec::linear_weight_index(int i) const {
  int idx = static_cast<int>(block_norms.size());
  for (int k = 0; k < i; ++k) idx += linears[k].bias ? 2 : 1;
  return idx;
}

std::vector<int> ModelSpec::group_members(int g) const {
  std::vector<int> out;
  for (size_t i = 0; i < linears.size(); ++i) {
    if (linears[i].group == g) out.push_back(static_cast<int>(i));
  }
  return out;
}

std::vector<int> ModelSpec::input_members(int k) const {
  std::vector<int> out;
  for (size_t i = 0; i < linears.size(); ++i) {
    if (linears[i].input == k) out.push_back(static_cast<int>(i));
  }
  return out;
}

std::vector<int> ModelSpec::group_inputs(int g) const {
  std::vector<int> out;
  for (const LinearSpec& l : linears) {
    if (l.group == g && (out.empty() || out.back() != l.input)) out.push_back(l.input);
  }
  return out;
}

std::vector<TensorSpec> ModelSpec::all_tensors() const {
  std::vector<TensorSpec> out = embedding;
  for (int64_t b = 0; b < n_layer; ++b) {
    for (TensorSpec& t : block_tensors(b)) out.push_back(std::move(t));
  }
  out.insert(out.end(), final_norm.begin(), final_norm.end());
  if (!lm_head.empty()) out.push_back({lm_head, {vocab, hidden}});
  return out;
}

void ModelSpec::check_seqlen(int64_t seqlen, const std::string& what) const {
  GPTQD_INPUT_CHECK(max_seqlen <= 0 || seqlen <= max_seqlen,
                    "{} is {} tokens, but {}: use at most {}", what, seqlen, max_seqlen_why,
                    max_seqlen);
}

std::string ModelSpec::canonical(const std::string& name) const {
  for (const std::string& p : strip_prefixes) {
    if (name.compare(0, p.size(), p) == 0) return name.substr(p.size());
  }
  return name;
}

std::string ModelSpec::hf_name(const std::string& canonical_name) const {
  if (!lm_head.empty() && canonical_name == lm_head) return canonical_name;
  if (canonical_name == "lm_head.weight") return canonical_name;
  return hf_prefix + canonical_name;
}

}  // namespace gptqd
