"""The tiny mixtures of experts the peer check quantizes beside models/tiny-moe (a trained
Qwen2-MoE with a shared expert): a Mixtral and a Qwen3-MoE made by transformers' own classes
(env .venv-peer), random but seeded, with shapes every GPTQ kernel takes (hidden and expert
width 64: group 32 divides both, 4-bit packs them) and the tokenizer of models/tiny-moe.

    python make_peer_moe.py OUT_DIR          # writes OUT_DIR/mixtral, OUT_DIR/qwen3_moe

Each model directory: config.json, model.safetensors (save_pretrained: transformers 5 fuses the
experts on load and writes them back one tensor per expert and projection, as the released
checkpoints store them), tokenizer.json. Weights: N(0, gain / sqrt(fan_in)) for every matrix
(gain 3 for the router, so that routing is clear; 1.5 for q and k), embeddings N(0, 0.25), norm
weights U[0.8, 1.2), as tests/fixtures/moe (scripts/make_moe_fixtures.py) draws them. A model is
rewritten only when missing (the peer check's results are cached against it).
"""
import math
import os
import shutil
import sys

import torch
from transformers import MixtralConfig, MixtralForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOKENIZER = os.path.join(ROOT, "models", "tiny-moe", "tokenizer.json")
COMMON = dict(vocab_size=4096, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
              num_hidden_layers=2, rms_norm_eps=1e-6, max_position_embeddings=2048,
              bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False,
              rope_parameters={"rope_type": "default", "rope_theta": 1e6})
CASES = {
    # Mixtral: block_sparse_moe.experts.E.w1/w2/w3 in the file, 5 experts, top-2.
    "mixtral": (MixtralConfig, MixtralForCausalLM, 61, dict(
        COMMON, intermediate_size=64, num_local_experts=5, num_experts_per_tok=2,
        sliding_window=None)),
    # Qwen3-MoE: per-head q/k RMSNorm, head_dim 32 (q_proj 128x64), 6 experts, top-3 renormalised.
    "qwen3_moe": (Qwen3MoeConfig, Qwen3MoeForCausalLM, 62, dict(
        COMMON, head_dim=32, intermediate_size=128, moe_intermediate_size=64, num_experts=6,
        num_experts_per_tok=3, norm_topk_prob=True, attention_bias=False,
        use_sliding_window=False)),
}


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.25)
            elif "norm" in name:
                p.copy_(torch.rand(p.shape, generator=g) * 0.4 + 0.8)
            elif p.dim() == 3:  # fused experts [E, out, in]
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[2]))
            elif p.dim() == 2:
                gain = 1.5 if ("q_proj" in name or "k_proj" in name) else 1.0
                if name.endswith("mlp.gate.weight"):
                    gain = 3.0
                p.copy_(torch.randn(p.shape, generator=g) * gain / math.sqrt(p.shape[1]))
            else:
                raise RuntimeError(f"unexpected parameter {name}")


def main(out):
    for name, (config_cls, model_cls, seed, kwargs) in CASES.items():
        d = os.path.join(out, name)
        if os.path.exists(os.path.join(d, "model.safetensors")):
            continue
        torch.manual_seed(seed)
        model = model_cls(config_cls(**kwargs)).float().eval()
        init_weights(model, seed)
        tmp = d + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        for f in ("generation_config.json",):
            if os.path.exists(os.path.join(tmp, f)):
                os.remove(os.path.join(tmp, f))
        shutil.copy(TOKENIZER, tmp)
        shutil.rmtree(d, ignore_errors=True)
        os.rename(tmp, d)
        print(f"made {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
