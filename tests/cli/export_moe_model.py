#!/usr/bin/env python3
"""A tiny random mixture of experts whose shapes the GPTQ layout packs (every linear's in and
out a multiple of 32), for tests/cli/export_moe.sh.

    export_moe_model.py CASE DST        CASE: mixtral | qwen2_moe | qwen3_moe

The config is tests/fixtures/moe/CASE/config.json (transformers 5.x spellings) with hidden 64,
4 heads / 2 KV heads, 3 or 4 experts of width 32, Qwen2-MoE's shared expert of width 64 behind
its [1, 64] sigmoid gate, Qwen3-MoE's head_dim 32, vocab 512 (the cli tests' tokens), 2 blocks.
Tensors are named as the released checkpoints name them (block_sparse_moe.experts.E.w1/w2/w3
for Mixtral, mlp.experts.E.{gate,up,down}_proj for Qwen), float32, N(0, 1/sqrt(fan_in)),
seeded. numpy and the standard library only.
"""
import json
import os
import struct
import sys

import numpy as np

HIDDEN, FFN, SHARED, VOCAB, BLOCKS = 64, 32, 64, 512, 2
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "moe")


def config(case):
    c = json.load(open(os.path.join(FIXTURES, case, "config.json")))
    c.update(hidden_size=HIDDEN, num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
             num_hidden_layers=BLOCKS)
    if case == "mixtral":
        c.update(intermediate_size=FFN, num_local_experts=3)
    else:
        c.update(moe_intermediate_size=FFN, intermediate_size=2 * FFN)
        c["num_local_experts" if "num_local_experts" in c else "num_experts"] = 4 if case == "qwen3_moe" else 3
    if case == "qwen2_moe":
        c["shared_expert_intermediate_size"] = SHARED
    if case == "qwen3_moe":
        c["head_dim"] = 32
    if "layer_types" in c:
        c["layer_types"] = c["layer_types"][:1] * BLOCKS
    return c


def shapes(case, c):
    head_dim = c.get("head_dim") or HIDDEN // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * head_dim, c["num_key_value_heads"] * head_dim
    experts = c.get("num_local_experts") or c.get("num_experts")
    out = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,)}
    if not c.get("tie_word_embeddings", True):
        out["lm_head.weight"] = (VOCAB, HIDDEN)
    for b in range(BLOCKS):
        p = f"model.layers.{b}."
        out[p + "input_layernorm.weight"] = (HIDDEN,)
        out[p + "post_attention_layernorm.weight"] = (HIDDEN,)
        for n, rows in (("q", q), ("k", kv), ("v", kv)):
            out[p + f"self_attn.{n}_proj.weight"] = (rows, HIDDEN)
            if case == "qwen2_moe":
                out[p + f"self_attn.{n}_proj.bias"] = (rows,)
        out[p + "self_attn.o_proj.weight"] = (HIDDEN, q)
        if case == "qwen3_moe":
            out[p + "self_attn.q_norm.weight"] = (head_dim,)
            out[p + "self_attn.k_norm.weight"] = (head_dim,)
        mlp = p + ("block_sparse_moe." if case == "mixtral" else "mlp.")
        names = ("w1", "w3", "w2") if case == "mixtral" else ("gate_proj", "up_proj", "down_proj")
        out[mlp + "gate.weight"] = (experts, HIDDEN)
        for e in range(experts):
            out[mlp + f"experts.{e}.{names[0]}.weight"] = (FFN, HIDDEN)
            out[mlp + f"experts.{e}.{names[1]}.weight"] = (FFN, HIDDEN)
            out[mlp + f"experts.{e}.{names[2]}.weight"] = (HIDDEN, FFN)
        if case == "qwen2_moe":
            out[mlp + "shared_expert.gate_proj.weight"] = (SHARED, HIDDEN)
            out[mlp + "shared_expert.up_proj.weight"] = (SHARED, HIDDEN)
            out[mlp + "shared_expert.down_proj.weight"] = (HIDDEN, SHARED)
            out[mlp + "shared_expert_gate.weight"] = (1, HIDDEN)
    return out


def main(case, dst):
    os.makedirs(dst)
    c = config(case)
    rng = np.random.default_rng({"mixtral": 1, "qwen2_moe": 2, "qwen3_moe": 3}[case])
    header, blobs, off = {}, [], 0
    for name, shape in shapes(case, c).items():
        if len(shape) == 1:
            t = rng.uniform(0.8, 1.2, shape) if "norm" in name else rng.normal(0, 0.1, shape)
        else:
            t = rng.normal(0, 1 / np.sqrt(shape[1]), shape)
        b = np.ascontiguousarray(t, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    json.dump(c, open(os.path.join(dst, "config.json"), "w"), indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:])
