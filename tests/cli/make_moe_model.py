#!/usr/bin/env python3
"""A copy of a tiny MoE fixture (tests/fixtures/moe/<case>) with a vocabulary of 4096, for the
tokenizer of models/tiny-llama, so that the cli tests can calibrate and evaluate on text.

    make_moe_model.py SRC DST [EDIT]

The embedding becomes [4096, hidden], N(0, 0.25), and an untied LM head [4096, hidden],
N(0, 1/sqrt(hidden)), seeded. EDIT, if given, breaks the copy for the bad-input tests:
  drop=NAME         the tensor NAME is renamed away (its bytes stay)
  shape=NAME:A,B    the header gives NAME the shape [A, B] (same element count)
  config=PYTHON     the Python statement(s) run on the config dict `c`
or makes it deeper for the distributed tests:
  blocks=N          N blocks: block b is a copy of the fixture's block b % L (L its blocks) with
                    its linear weights scaled by 1 - 0.05 * (b // L), so no two blocks are equal
numpy and the standard library only.
"""
import json
import os
import struct
import sys

import numpy as np


def main(src, dst, edit=""):
    os.makedirs(dst)
    raw = open(os.path.join(src, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    tensors = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        tensors[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(h["shape"])
    hidden = tensors["model.embed_tokens.weight"].shape[1]
    rng = np.random.default_rng(5)
    tensors["model.embed_tokens.weight"] = rng.normal(0, 0.25, (4096, hidden))
    if "lm_head.weight" in tensors:  # untied (mixtral, qwen3_moe)
        tensors["lm_head.weight"] = rng.normal(0, 1 / np.sqrt(hidden), (4096, hidden))
    if edit.startswith("blocks="):
        src_blocks = json.load(open(os.path.join(src, "config.json")))["num_hidden_layers"]
        for b in range(src_blocks, int(edit[7:])):
            prefix = f"model.layers.{b % src_blocks}."
            for name in [k for k in tensors if k.startswith(prefix)]:
                t = tensors[name]
                if name.endswith("proj.weight") or name.endswith(".w1.weight") or name.endswith(".w2.weight") or name.endswith(".w3.weight"):
                    t = t * (1 - 0.05 * (b // src_blocks))
                tensors[f"model.layers.{b}." + name[len(prefix):]] = t
    if edit.startswith("drop="):
        tensors["unused.weight"] = tensors.pop(edit[5:])
    if edit.startswith("shape="):
        name, dims = edit[6:].split(":")
        shape = [int(d) for d in dims.split(",")]
        assert int(np.prod(shape)) == tensors[name].size, (shape, tensors[name].shape)
        tensors[name] = tensors[name].reshape(shape)
    out, off, blobs = {}, 0, []
    for name, t in tensors.items():
        b = np.ascontiguousarray(t, dtype=np.float32).tobytes()
        out[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(out).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    c = json.load(open(os.path.join(src, "config.json")))
    c["vocab_size"] = 4096
    if edit.startswith("blocks="):
        n = int(edit[7:])
        if "layer_types" in c:  # one entry per block, repeated as the blocks are
            c["layer_types"] = [c["layer_types"][b % c["num_hidden_layers"]] for b in range(n)]
        c["num_hidden_layers"] = n
    if edit.startswith("config="):
        exec(edit[7:])
    json.dump(c, open(os.path.join(dst, "config.json"), "w"), indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:])
