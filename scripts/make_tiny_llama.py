#!/usr/bin/env python3
"""models/tiny-llama: a small random LlamaForCausalLM for the multi-rank tests (layouts, kill and
resume) of the Llama family, beside models/tiny-bloom.

Regenerate, from the repository root (deterministic: fixed seed, CPU, fp32; byte-identical output):
    source scripts/python-env-hf.sh
    "$GPTQD_HF_PYTHON" scripts/make_tiny_llama.py
(torch 2.5.1, transformers 4.57.6, the versions the committed files were made with.)

Writes models/tiny-llama/config.json, model.safetensors (fp32, HF names: model.embed_tokens.weight,
model.layers.<i>.self_attn.{q,k,v,o}_proj.weight, model.layers.<i>.mlp.{gate,up,down}_proj.weight,
model.layers.<i>.{input,post_attention}_layernorm.weight, model.norm.weight, lm_head.weight) and
tokenizer.json, a byte copy of models/tiny-bloom/tokenizer.json (the same 4096-token BPE; its
specials <unk> <s> </s> <pad> = 0..3 give bos 1, eos 2, pad 3). README.md there is written by hand.
Shape: vocab 4096, hidden 64, 4 layers, 4 heads / 2 KV heads (head_dim 16), FFN 160 (a multiple of 32, so every bit width packs in the GPTQ export; not of 64 or 128), untied
LM head, rope_theta 10000, RMSNorm eps 1e-5, max_position_embeddings 2048. The weights are random
(make_family_fixtures.init_weights, seed 7: norm weights in [0.8, 1.2), linear weights
N(0, gain/sqrt(fan_in)), embeddings N(0, 0.25)), not trained: the tests compare runs with each
other, not with a perplexity target. The script refuses to write a model.safetensors over 4 MB.
"""
import argparse
import hashlib
import shutil
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from make_family_fixtures import init_weights

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "models/tiny-llama"
TOKENIZER = ROOT / "models/tiny-bloom/tokenizer.json"
SEED = 7
MAX_BYTES = 4_000_000


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    torch.set_num_threads(1)
    config = LlamaConfig(
        vocab_size=4096, hidden_size=64, intermediate_size=160, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False,
        mlp_bias=False, attention_dropout=0.0, bos_token_id=1, eos_token_id=2, pad_token_id=3,
        torch_dtype="float32")
    torch.manual_seed(SEED)  # transformers' own init, overwritten below
    model = LlamaForCausalLM(config).float().eval()
    init_weights(model, SEED)
    a.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    (a.out / "generation_config.json").unlink(missing_ok=True)  # needed by no one
    shutil.copyfile(TOKENIZER, a.out / "tokenizer.json")
    st = a.out / "model.safetensors"
    size = st.stat().st_size
    if size > MAX_BYTES:
        st.unlink()
        raise SystemExit(f"error: model.safetensors would be {size:,} bytes, more than {MAX_BYTES:,}")
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {a.out}: {n:,} parameters, model.safetensors {size:,} bytes, "
          f"sha256 {hashlib.sha256(st.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
