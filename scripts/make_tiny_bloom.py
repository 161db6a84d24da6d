#!/usr/bin/env python3
"""Writes a small random BLOOM as an HF checkpoint directory (config.json + model.safetensors).

The layout is the real one (BloomForCausalLM's config keys and tensor names, with the
"transformer." prefix that save_pretrained writes); the weights are random, drawn as
transformers initialises BLOOM (normal(0, 0.02), layer norms 1/0, biases 0), so the
quantization path can be exercised without downloading anything. Needs only the Python
standard library.

    python3 scripts/make_tiny_bloom.py OUT_DIR [--layers 4 --hidden 256 --heads 8
                                               --vocab 4096 --seed 0 --dtype F32]

The trained model that the quick start uses comes from scripts/train_tiny_bloom.py; this
script makes random ones for tests that need a model but not its quality (odd head
counts, sharded files, prefix-less names).
"""
import argparse
import array
import json
import os
import random
import struct
import sys


def tensor_bytes(values, dtype):
    if dtype == "F32":
        return array.array("f", values).tobytes()
    if dtype == "F16":
        return b"".join(struct.pack("<e", v) for v in values)
    if dtype == "BF16":
        raw = array.array("f", values)
        ints = array.array("I", raw.tobytes())
        out = array.array("H", ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 for u in ints))
        return out.tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype, shape, bytes)."""
    header = {}
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, data in tensors:
            f.write(data)
    os.replace(path + ".tmp", path)


def bloom_tensors(layers, hidden, vocab, rng, dtype, prefix):
    def normal(n):
        return [rng.gauss(0.0, 0.02) for _ in range(n)]

    def ones(n):
        return [1.0] * n

    def zeros(n):
        return [0.0] * n

    def t(name, shape, values):
        return (prefix + name, dtype, shape, tensor_bytes(values, dtype))

    out = [
        t("word_embeddings.weight", [vocab, hidden], normal(vocab * hidden)),
        t("word_embeddings_layernorm.weight", [hidden], ones(hidden)),
        t("word_embeddings_layernorm.bias", [hidden], zeros(hidden)),
    ]
    for i in range(layers):
        p = f"h.{i}."
        out += [
            t(p + "input_layernorm.weight", [hidden], ones(hidden)),
            t(p + "input_layernorm.bias", [hidden], zeros(hidden)),
            t(p + "self_attention.query_key_value.weight", [3 * hidden, hidden], normal(3 * hidden * hidden)),
            t(p + "self_attention.query_key_value.bias", [3 * hidden], zeros(3 * hidden)),
            t(p + "self_attention.dense.weight", [hidden, hidden], normal(hidden * hidden)),
            t(p + "self_attention.dense.bias", [hidden], zeros(hidden)),
            t(p + "post_attention_layernorm.weight", [hidden], ones(hidden)),
            t(p + "post_attention_layernorm.bias", [hidden], zeros(hidden)),
            t(p + "mlp.dense_h_to_4h.weight", [4 * hidden, hidden], normal(4 * hidden * hidden)),
            t(p + "mlp.dense_h_to_4h.bias", [4 * hidden], zeros(4 * hidden)),
            t(p + "mlp.dense_4h_to_h.weight", [hidden, 4 * hidden], normal(4 * hidden * hidden)),
            t(p + "mlp.dense_4h_to_h.bias", [hidden], zeros(hidden)),
        ]
    out += [
        t("ln_f.weight", [hidden], ones(hidden)),
        t("ln_f.bias", [hidden], zeros(hidden)),
    ]
    return out


def config_json(layers, hidden, heads, vocab):
    return {
        "architectures": ["BloomForCausalLM"],
        "model_type": "bloom",
        "apply_residual_connection_post_layernorm": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 3,
        "hidden_dropout": 0.0,
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "n_head": heads,
        "n_layer": layers,
        "pretraining_tp": 1,
        "slow_but_exact": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": vocab,
    }


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"])
    ap.add_argument("--no-prefix", action="store_true", help="tensor names without 'transformer.'")
    ap.add_argument("--shards", type=int, default=1, help="split into N shards with an index")
    a = ap.parse_args(argv)

    rng = random.Random(a.seed)
    prefix = "" if a.no_prefix else "transformer."
    tensors = bloom_tensors(a.layers, a.hidden, a.vocab, rng, a.dtype, prefix)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config_json(a.layers, a.hidden, a.heads, a.vocab), f, indent=2)
        f.write("\n")
    meta = {"format": "pt"}
    if a.shards <= 1:
        write_safetensors(os.path.join(a.out, "model.safetensors"), tensors, meta)
        return 0
    per = (len(tensors) + a.shards - 1) // a.shards
    weight_map = {}
    total = 0
    for s in range(a.shards):
        part = tensors[s * per:(s + 1) * per]
        name = f"model-{s + 1:05d}-of-{a.shards:05d}.safetensors"
        write_safetensors(os.path.join(a.out, name), part, meta)
        for t in part:
            weight_map[t[0]] = name
            total += len(t[3])
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
