#!/usr/bin/env python3
"""An independent reading of a mixture-of-experts export (tests/cli/export_moe.sh).

    export_moe_check.py EXPORT_DIR CHECKPOINT RUN MODEL_DIR

Reads the export's model.safetensors with its own parser, the checkpoint with h5py and the
original model, and checks, per format (config.json's quantization_config says which):
  - every layer the checkpoint quantized (its `layers` attribute) is in the file under the
    model's own name (model.layers.B.<layer>.), with no `.weight`: gptq/gptq_v2 qweight I32
    [in * bits / 32, out], qzeros I32 [groups, out * bits / 32], scales [groups, out], g_idx I32
    [in], whose codes, zeros (v1: stored zero - 1), scales and g_idx are the checkpoint's;
    compressed-tensors weight_packed I32 [out, in * bits / 32], weight_scale [out, groups],
    weight_shape I64 [2], weight_zero_point only when asymmetric;
  - every other tensor of the original model (embeddings, norms, and the linears no layer list
    holds: the router, Qwen2-MoE's shared_expert_gate) is in the file under its own name with
    its own dtype, shape and values, and has no quantized tensors;
  - the full-precision linears, derived here from the original file (its 2-D block tensors that
    are no checkpoint layer), are exactly gptq's `modules_to_not_convert` and are in
    compressed-tensors' `ignore` (with lm_head); gptq's `modules_in_block_to_quantize` names
    every quantized layer and, read with optimum's rule (a module is converted when its name
    ends with an entry), none of the full-precision linears.
Prints one line per check group; exits 1 naming the first failure.
"""
import json
import struct
import sys

import h5py
import numpy as np

KINDS = {"I32": np.int32, "I64": np.int64, "F16": np.float16, "F32": np.float32}


def read(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        a = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=KINDS[v["dtype"]]).reshape(v["shape"])
        out[k] = (v["dtype"], a)
    return out


def bits_along0(packed, n, bits):
    """LSB-first bit stream along dim 0: value k at bits [k*bits, (k+1)*bits)."""
    w = packed.astype(np.uint32).astype(np.uint64)
    out = np.zeros((n,) + packed.shape[1:], dtype=np.int64)
    for k in range(n):
        q, s = divmod(k * bits, 32)
        v = w[q] >> np.uint64(s)
        if s + bits > 32:
            v |= w[q + 1] << np.uint64(32 - s)
        out[k] = (v & np.uint64((1 << bits) - 1)).astype(np.int64)
    return out


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)


def main(export_dir, ckpt_path, run, model_dir):
    ex = read(f"{export_dir}/model.safetensors")
    orig = read(f"{model_dir}/model.safetensors")
    qc = json.load(open(f"{export_dir}/config.json"))["quantization_config"]
    ck = h5py.File(ckpt_path, "r")
    layers = [x.decode() if isinstance(x, bytes) else x for x in ck.attrs["layers"]]
    r = ck[f"runs/{run}"]
    bits, sym, gs = int(r.attrs["bits"]), bool(r.attrs["sym"]), int(r.attrs["group_size"])
    fmt = qc.get("checkpoint_format", qc["quant_method"])
    blocks = sorted({int(k.split(".")[2]) for k in orig if k.startswith("model.layers.")})
    quantized = {f"model.layers.{b}.{l}" for b in blocks for l in layers}

    # The layers: every one under its own name, in the format's tensors, equal to the checkpoint.
    for b in blocks:
        for l in layers:
            g = r[f"blocks/{b}/{l}"]
            codes, zeros, scales, g_idx = g["codes"][()], g["zeros"][()], g["scales"][()], g["g_idx"][()]
            rows, cols = codes.shape
            groups = scales.shape[0]
            p = f"model.layers.{b}.{l}."
            check(p + "weight" not in ex, f"{p}weight is in the file beside its quantized tensors")
            if fmt in ("gptq", "gptq_v2"):
                want = {"qweight": ("I32", (cols * bits // 32, rows)), "qzeros": ("I32", (groups, rows * bits // 32)),
                        "scales": ("F32", (groups, rows)), "g_idx": ("I32", (cols,))}
                for t, (dt, shape) in want.items():
                    check(p + t in ex, f"{p}{t} missing")
                    check(ex[p + t][0] == dt and ex[p + t][1].shape == shape,
                          f"{p}{t}: {ex[p + t][0]} {ex[p + t][1].shape}, expected {dt} {shape}")
                check((bits_along0(ex[p + "qweight"][1], cols, bits).T == codes).all(), f"{p}qweight codes")
                z = bits_along0(ex[p + "qzeros"][1].T, rows, bits).T + (1 if fmt == "gptq" else 0)
                check(((z == zeros) | ((zeros == 0) & (z == 1 << bits))).all(), f"{p}qzeros")
                check((ex[p + "scales"][1] == scales).all(), f"{p}scales")
                check((ex[p + "g_idx"][1] == g_idx).all(), f"{p}g_idx")
            else:
                wp = ex[p + "weight_packed"]
                check(wp[0] == "I32" and wp[1].shape == (rows, (cols * bits + 31) // 32), f"{p}weight_packed {wp[1].shape}")
                check((bits_along0(wp[1].T, cols, bits).T == codes).all(), f"{p}weight_packed codes")
                check(ex[p + "weight_scale"][0] == "F32" and (ex[p + "weight_scale"][1] == scales.T).all(), f"{p}weight_scale")
                check((ex[p + "weight_shape"][1] == [rows, cols]).all(), f"{p}weight_shape")
                check((p + "weight_zero_point" in ex) == (not sym), f"{p}weight_zero_point present: {not sym} expected")
    print(f"ok   {fmt}: {len(quantized)} quantized layers ({len(layers)} per block) match the checkpoint")

    # Every other tensor, the router and shared-expert gate among them, copied exactly.
    full_precision = set()
    for k, (dt, a) in orig.items():
        module = k[:-len(".weight")] if k.endswith(".weight") else None
        if module in quantized:
            continue
        check(k in ex, f"{k} is not in the export")
        check(ex[k][0] == dt and ex[k][1].shape == a.shape and (ex[k][1] == a).all(),
              f"{k}: not the original's {dt} {list(a.shape)} values")
        if module and k.startswith("model.layers.") and a.ndim == 2:
            full_precision.add(module)
            for t in ("qweight", "qzeros", "scales", "g_idx", "weight_packed", "weight_scale"):
                check(f"{module}.{t}" not in ex, f"{module}.{t}: a full-precision linear quantized")
    check(full_precision, "no full-precision linear found (a router is expected)")
    print(f"ok   {len(full_precision)} full-precision linears copied as they were: "
          f"{', '.join(sorted(m.split('.', 3)[3] for m in full_precision if '.0.' in m))} per block")

    # The lists the loaders read.
    if fmt in ("gptq", "gptq_v2"):
        check(set(qc.get("modules_to_not_convert", [])) == full_precision,
              f"modules_to_not_convert {qc.get('modules_to_not_convert')} != {sorted(full_precision)}")
        allow = [m for group in qc["modules_in_block_to_quantize"] for m in group]
        check(set(layers) <= set(allow), f"modules_in_block_to_quantize misses {set(layers) - set(allow)}")
        for m in full_precision:
            check(not any(m.endswith(a) for a in allow), f"optimum would convert {m} (modules_in_block_to_quantize)")
        print(f"ok   modules_to_not_convert = the {len(full_precision)} full-precision linears; "
              f"modules_in_block_to_quantize ({len(allow)} names) covers every layer and none of them")
    else:
        ignore = set(qc["ignore"])
        check("lm_head" in ignore and full_precision <= ignore, f"ignore {sorted(ignore)} misses {sorted(full_precision - ignore)}")
        check(not any(f"model.layers.{b}.{l}" in ignore for b in blocks for l in layers), "a quantized layer is ignored")
        w = qc["config_groups"]["group_0"]["weights"]
        check(w["num_bits"] == bits and w["symmetric"] == sym and w["group_size"] == (None if gs == -1 else gs), f"weights {w}")
        print(f"ok   ignore = lm_head + the {len(full_precision)} full-precision linears")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
