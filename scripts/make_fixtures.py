#!/usr/bin/env python3
"""Golden fixtures for the C++ BLOOM forward and perplexity, made with HF transformers.

Regenerate, from the repository root (deterministic: fixed seeds, CPU, fp32, eval mode):
    source scripts/python-env.sh
    "$GPTQD_PYTHON" scripts/make_fixtures.py
python-env.sh pins transformers 4.36.2 (with Debian's torch 1.13, the versions these fixtures
were made with). The C++ tests that read them: tests/unit/test_bloom_forward.cpp and
tests/unit/test_perplexity.cpp.

Writes tests/fixtures/bloom/ (1.6 MB in all; the script refuses to exceed 2 MB):
  <name>/config.json, <name>/model.safetensors  a tiny random BloomForCausalLM saved with
      save_pretrained(safe_serialization=True). Every parameter is drawn from a seeded torch
      generator with non-trivial values (layer-norm weights around 1 and non-zero biases, linear
      biases non-zero), not transformers' 1/0 init, so a forward that skips a bias or a norm's
      affine part disagrees. The models:
        pow2     4 heads, hidden 64, 2 layers, vocab 300   (ALiBi slopes 2^(-8i/4) only)
        odd6     6 heads, hidden 72, 2 layers, vocab 300   (p = 4: two extra slopes 2^(-4k/4),
                                                           k = 1, 3)
        postln   3 heads, hidden 48, 2 layers, vocab 300,
                 apply_residual_connection_post_layernorm true
  <name>/forward.safetensors  the model run on fixed token ids (2 sequences x 17 tokens, no
      attention mask, i.e. all ones):
        input_ids    I32 [2, 17]
        embeddings   F32 [2, 17, hidden]  word_embeddings_layernorm(word_embeddings(ids)):
                                          output_hidden_states[0]
        block.<i>    F32 [2, 17, hidden]  the output of block i, taken by a forward hook on
                     transformer.h[i]. (output_hidden_states[i + 1] is the same tensor for every
                     block but the last: HF's last hidden state is ln_f(block.<n-1>); the script
                     asserts both facts.)
        logits       F32 [2, 17, vocab]   BloomForCausalLM's logits (tied LM head)
  alibi_slopes.safetensors  transformers' build_alibi_tensor slopes, F32 "slopes.<n>" [n] for
      n_head in 1..16, 24, 32, 112 (the key position-1 column of the alibi tensor).
  pow2/perplexity.safetensors  the GPTQ paper's perplexity (IST-DASLab/gptq bloom.py bloom_eval)
      of the pow2 model on a fixed token stream:
        tokens       I32 [101]  (3 windows of 32 and a remainder of 5 that the protocol drops)
        seqlen       I64 [1]    32
        window_nll   F64 [3]    per window: CrossEntropyLoss over the window's 31 next-token
                                predictions (the mean), computed by torch in fp32
        ppl          F64 [1]    exp(sum(window_nll * seqlen) / (nwindows * seqlen)), as bloom_eval
"""
import argparse
import json
import math
from pathlib import Path

import sys

import torch

from ppl_protocol import perplexity_fixture  # scripts/ppl_protocol.py
import transformers
from safetensors.torch import save_file
from transformers import BloomConfig, BloomForCausalLM
from transformers.models.bloom.modeling_bloom import build_alibi_tensor

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/fixtures/bloom"

MODELS = {
    "pow2": dict(n_head=4, hidden_size=64, n_layer=2, vocab_size=300, post_ln=False, seed=11),
    "odd6": dict(n_head=6, hidden_size=72, n_layer=2, vocab_size=300, post_ln=False, seed=12),
    "postln": dict(n_head=3, hidden_size=48, n_layer=2, vocab_size=300, post_ln=True, seed=13),
}
BATCH, SEQ = 2, 17
PPL_MODEL, PPL_SEQLEN, PPL_TOKENS = "pow2", 32, 101
SLOPE_HEADS = list(range(1, 17)) + [24, 32, 112]


def init_weights(model, seed):
    """Non-trivial values for every parameter, drawn in named_parameters() order."""
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=g) * std + mean

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("word_embeddings.weight"):
                p.copy_(normal(p.shape, 0.25))  # also the tied LM head: logits of a few units
            elif "layernorm" in name or "ln_f" in name:
                if name.endswith(".weight"):
                    p.copy_(torch.rand(p.shape, generator=g) + 0.5)  # uniform [0.5, 1.5)
                else:
                    p.copy_(normal(p.shape, 0.2))
            elif name.endswith(".weight"):  # linear [out, in]
                # query_key_value a little hotter so that attention is peaked and the ALiBi
                # bias and the causal mask matter
                gain = 1.5 if "query_key_value" in name else 1.0
                p.copy_(normal(p.shape, gain / math.sqrt(p.shape[1])))
            elif name.endswith(".bias"):
                p.copy_(normal(p.shape, 0.1))
            else:
                raise RuntimeError(f"unexpected parameter {name}")


def make_model(spec):
    config = BloomConfig(
        vocab_size=spec["vocab_size"],
        hidden_size=spec["hidden_size"],
        n_layer=spec["n_layer"],
        n_head=spec["n_head"],
        layer_norm_epsilon=1e-5,
        apply_residual_connection_post_layernorm=spec["post_ln"],
        hidden_dropout=0.0,
        attention_dropout=0.0,
        pretraining_tp=1,
        slow_but_exact=False,
        torch_dtype="float32",
    )
    torch.manual_seed(spec["seed"])  # transformers' own init, overwritten below
    model = BloomForCausalLM(config).float().eval()
    init_weights(model, spec["seed"])
    return model


@torch.no_grad()
def forward_fixture(model, ids):
    blocks = model.transformer.h
    outs = [None] * len(blocks)
    hooks = [blk.register_forward_hook(lambda m, a, o, i=i: outs.__setitem__(i, o[0].clone()))
             for i, blk in enumerate(blocks)]
    res = model(input_ids=ids, output_hidden_states=True, use_cache=False, return_dict=True)
    for h in hooks:
        h.remove()
    hs = res.hidden_states
    assert len(hs) == len(blocks) + 1
    for i in range(len(blocks) - 1):
        assert torch.equal(hs[i + 1], outs[i]), f"hidden_states[{i + 1}] is not block {i}'s output"
    assert torch.equal(hs[-1], model.transformer.ln_f(outs[-1])), "last hidden state is not ln_f(out)"
    t = {"input_ids": ids.to(torch.int32).contiguous(), "embeddings": hs[0].contiguous()}
    for i, o in enumerate(outs):
        t[f"block.{i}"] = o.contiguous()
    t["logits"] = res.logits.contiguous()
    return t



def alibi_slopes():
    out = {}
    for n in SLOPE_HEADS:
        # key positions 0, 1: the column at position 1 is the slope itself
        alibi = build_alibi_tensor(torch.ones(1, 2), n, torch.float32)  # [n, 1, 2]
        out[f"slopes.{n}"] = alibi[:, 0, 1].contiguous()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    if transformers.__version__ != "4.36.2":
        print(f"warning: transformers {transformers.__version__}; the fixtures were made with 4.36.2",
              file=sys.stderr)
    torch.set_num_threads(1)  # the same summation order on any machine
    a.out.mkdir(parents=True, exist_ok=True)
    for name, spec in MODELS.items():
        model = make_model(spec)
        d = a.out / name
        model.save_pretrained(d, safe_serialization=True)
        g = torch.Generator().manual_seed(100 + spec["seed"])
        ids = torch.randint(0, spec["vocab_size"], (BATCH, SEQ), generator=g)
        save_file(forward_fixture(model, ids), str(d / "forward.safetensors"))
        if name == PPL_MODEL:
            toks = torch.randint(0, spec["vocab_size"], (1, PPL_TOKENS), generator=g)
            p = perplexity_fixture(model, toks, PPL_SEQLEN)
            save_file(p, str(d / "perplexity.safetensors"))
            print(f"{name}: perplexity {p['ppl'].item():.6f} over {PPL_TOKENS // PPL_SEQLEN} windows")
        # generation_config.json is not needed by anyone
        (d / "generation_config.json").unlink(missing_ok=True)
        print(f"{name}: {spec}")
    save_file(alibi_slopes(), str(a.out / "alibi_slopes.safetensors"))
    total = sum(f.stat().st_size for f in a.out.rglob("*") if f.is_file())
    print(f"wrote {a.out} ({total / 1e6:.2f} MB)")
    assert total < 2_000_000, "fixtures must stay under 2 MB"


if __name__ == "__main__":
    main()
