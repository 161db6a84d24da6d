#!/usr/bin/env python3
"""Writes the committed seed corpus of each fuzz harness (tests/fuzz/corpus/<harness>/) from the
repository's own fixtures, small: tokenizers cut to their first 256 tokens, safetensors files
with every tensor shrunk to two elements. Deterministic; rerun after a fixture changes.
Usage: tests/fuzz/make_corpus.py   (from anywhere; standard library only)"""
import glob
import json
import os
import random
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")
DTYPE_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
              "U8": 1, "BOOL": 1}


def put(harness, name, data):
    os.makedirs(os.path.join(OUT, harness), exist_ok=True)
    with open(os.path.join(OUT, harness, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, bytes)] laid out in order, as the reference writer does."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def shrunk(path):
    """The file's tensors, names and dtypes kept, each of shape [2] with counting bytes."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", None)
    items = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    return safetensors([(k, v["dtype"], [2], bytes(range(2 * DTYPE_SIZE[v["dtype"]])))
                        for k, v in items], meta)


def small_tokenizer(path, keep=256):
    """tokenizer.json with the vocabulary cut to ids < keep and the merges inside it."""
    with open(path) as f:
        t = json.load(f)
    m = t["model"]
    if isinstance(m.get("vocab"), dict):
        m["vocab"] = {k: v for k, v in m["vocab"].items() if v < keep}
        merges = []
        for mg in m.get("merges", []):
            a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
            if a in m["vocab"] and b in m["vocab"] and a + b in m["vocab"]:
                merges.append(mg)
        m["merges"] = merges
    t["added_tokens"] = [a for a in t.get("added_tokens", []) if a["id"] < keep] or \
        t.get("added_tokens", [])[:2]
    return json.dumps(t, ensure_ascii=False, separators=(",", ":"))


def main():
    shutil.rmtree(OUT, ignore_errors=True)

    # safetensors: real headers shrunk, and the corner cases of the format.
    put("fuzz_safetensors", "tiny_llama.safetensors",
        shrunk(os.path.join(ROOT, "models/tiny-llama/model.safetensors")))
    put("fuzz_safetensors", "tiny_bloom.safetensors",
        shrunk(os.path.join(ROOT, "models/tiny-bloom/model.safetensors")))
    put("fuzz_safetensors", "all_dtypes.safetensors",
        safetensors([(d.lower(), d, [1, 3], bytes(3 * s)) for d, s in DTYPE_SIZE.items()],
                    {"format": "pt"}))
    put("fuzz_safetensors", "scalar_and_empty.safetensors",
        safetensors([("empty", "F32", [0, 4], b""), ("scalar", "F16", [], b"\x00\x3c")]))
    put("fuzz_safetensors", "empty.safetensors", safetensors([]))

    # config.json of every family the repository has.
    configs = sorted(glob.glob(os.path.join(ROOT, "models/*/config.json")) +
                     glob.glob(os.path.join(ROOT, "tests/fixtures/families/*/config.json")) +
                     glob.glob(os.path.join(ROOT, "configs/**/config.json"), recursive=True))
    for p in configs:
        put("fuzz_config_json", os.path.relpath(p, ROOT).replace("/", "_"), open(p, "rb").read())

    # tokenizer.json: each form cut small; text to encode.
    for p in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/tokenizer/forms/*/tokenizer.json"))):
        put("fuzz_tokenizer_load", os.path.basename(os.path.dirname(p)) + ".json", small_tokenizer(p))
    texts = {
        "english": "Hello, world! It's 2024 -- don't panic.\n\n  Indented\ttabs  ",
        "unicode": "café naïve 日本語のテキスト 한국어 Ελληνικά emoji \U0001F600\U0001F44D\u200d",
        "specials": "<s>text</s><|endoftext|><unk> <pad><|im_start|>user\n",
        "digits": "3.14159 1,000,000 0x1F 12345678901234567890",
        "spaces": "     \n\n\n \r\n\u00a0\u3000 end",
        "code": "def f(x):\n    return x ** 2  # comment\n",
    }
    for name, text in texts.items():
        put("fuzz_tokenizer_encode", name + ".txt", text)

    # Job files: the repository's configs.
    for p in sorted(glob.glob(os.path.join(ROOT, "configs/*.yaml"))):
        put("fuzz_job_yaml", os.path.basename(p), open(p, "rb").read())

    # Checkpoint edits: the harness reads these bytes as a list of edits (FuzzedDataProvider).
    rng = random.Random(14)
    put("fuzz_checkpoint", "none", b"")
    for i in range(8):
        put("fuzz_checkpoint", f"edits{i}", bytes(rng.randrange(256) for _ in range(8 + 8 * i)))


if __name__ == "__main__":
    main()
