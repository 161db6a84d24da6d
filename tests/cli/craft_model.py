#!/usr/bin/env python3
"""Makes broken copies of a small BLOOM directory for the bad-input tests.

    craft_model.py SRC DST CASE

CASE is one of: truncated, header-past-end, overlap, shape-mismatch, missing-tensor,
missing-config-key, int-weights, fp8-weights, nan-weight (block 0), inf-weight-last (the last block). DST gets
config.json and model.safetensors with exactly that defect.
Standard library only.
"""
import json
import os
import shutil
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    return header, raw[8 + n:]


def write(path, header, data):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def tensors(header):
    return sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0])


def main(src, dst, case):
    os.makedirs(dst, exist_ok=True)
    shutil.copy(os.path.join(src, "config.json"), dst)
    st = os.path.join(dst, "model.safetensors")
    header, data = read(os.path.join(src, "model.safetensors"))
    if case == "truncated":
        write(st, header, data[:-100])
    elif case == "header-past-end":
        write(st, header, data)
        with open(st, "r+b") as f:
            f.write(struct.pack("<Q", os.path.getsize(st) + 1000))
    elif case == "overlap":
        ts = tensors(header)
        name, info = ts[1]
        b, e = info["data_offsets"]
        info["data_offsets"] = [b - 4, e - 4]  # starts inside the previous tensor
        write(st, header, data)
    elif case == "shape-mismatch":
        name = "transformer.h.0.self_attention.dense.weight"
        header[name]["shape"] = [header[name]["shape"][0], header[name]["shape"][1] + 1]
        write(st, header, data)
    elif case == "missing-tensor":
        name = "transformer.h.1.mlp.dense_4h_to_h.weight"
        kept = [(k, v) for k, v in tensors(header) if k != name]
        out, chunks, off = {}, [], 0
        for k, v in kept:
            b, e = v["data_offsets"]
            out[k] = {"dtype": v["dtype"], "shape": v["shape"], "data_offsets": [off, off + e - b]}
            chunks.append(data[b:e])
            off += e - b
        write(st, out, b"".join(chunks))
    elif case == "int-weights":
        # The same bytes relabelled as integers of the same width (I32 for F32, I16 for F16/BF16).
        name = "transformer.h.0.self_attention.dense.weight"
        header[name]["dtype"] = {"F32": "I32", "F16": "I16", "BF16": "I16"}[header[name]["dtype"]]
        write(st, header, data)
    elif case == "fp8-weights":
        # One weight stored as F8_E4M3 (one byte per element, its first bytes), the file repacked.
        name = "transformer.h.0.self_attention.dense.weight"
        out, chunks, off = {}, [], 0
        for k, v in tensors(header):
            b, e = v["data_offsets"]
            if k == name:
                v["dtype"] = "F8_E4M3"
                e = b + v["shape"][0] * v["shape"][1]
            out[k] = {"dtype": v["dtype"], "shape": v["shape"], "data_offsets": [off, off + e - b]}
            chunks.append(data[b:e])
            off += e - b
        write(st, out, b"".join(chunks))
    elif case in ("nan-weight", "inf-weight-last"):
        # One weight of block 0 made NaN, or one of the last block +Inf: [3, 5] of its dense.
        with open(os.path.join(src, "config.json")) as f:
            last = json.load(f)["n_layer"] - 1
        block = 0 if case == "nan-weight" else last
        name = f"transformer.h.{block}.self_attention.dense.weight"
        info = header[name]
        bits = {"F32": (b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f"),
                "F16": (b"\x00\x7e", b"\x00\x7c"),
                "BF16": (b"\xc0\x7f", b"\x80\x7f")}[info["dtype"]]
        value = bits[0] if case == "nan-weight" else bits[1]
        at = info["data_offsets"][0] + (3 * info["shape"][1] + 5) * len(value)
        data = data[:at] + value + data[at + len(value):]
        write(st, header, data)
    elif case == "missing-config-key":
        shutil.copy(os.path.join(src, "model.safetensors"), st)
        with open(os.path.join(dst, "config.json")) as f:
            cfg = json.load(f)
        del cfg["n_head"]
        with open(os.path.join(dst, "config.json"), "w") as f:
            json.dump(cfg, f)
    else:
        raise SystemExit(f"unknown case {case}")


if __name__ == "__main__":
    main(*sys.argv[1:])
