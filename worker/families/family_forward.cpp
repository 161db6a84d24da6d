#include "worker/families/family_forward.h"

namespace gptqd {

const FamilyForward& family_forward(const ModelSpec& spec) {
  switch (spec.family) {
    case Family::kBloom:
      return bloom_forward();
    case Family::kLlama:
      return llama_forward();
    case Family::kOpt:
      return opt_forward();
    case Family::kMoe:
      if (spec.config.mla.kv_lora_rank > 0) return deepseek_forward();  // both block kinds
      // A dense block of Qwen2/3-MoE is a Llama-family block (io/model/families/moe.cpp).
      return spec.dense_mlp ? llama_forward() : moe_forward();
  }
  return bloom_forward();
}

void linear_forward(Backend& be, const LinearWeights& l, int64_t tokens, const float* x, float* y) {
  if (l.w16.size() > 0)
    be.forward_gemm_bf16_b(false, true, tokens, l.out, l.in, 1.0f, x, l.in, l.w16.data(), l.in,
                           0.0f, y, l.out);
  else
    be.forward_gemm(false, true, tokens, l.out, l.in, 1.0f, x, l.in, l.w.data(), l.in, 0.0f, y,
                    l.out);
  if (l.b.size() > 0) be.add_bias(tokens, l.out, l.b.data(), y);
}

}  // namespace gptqd
