#!/usr/bin/env bash
# `gptqd export` writes the HF GPTQ layout: qweight/qzeros/scales/g_idx unpack (with
# an independent numpy reading of AutoGPTQ's layout) to exactly the checkpoint's codes
# and zeros, scales are its fp16 values, other tensors are copied, and config.json
# carries quantization_config. 4-bit act_order and 3-bit runs; scales and bias in the model's
# dtype (fp32 here, the bias exact).
source "$(dirname "$0")/lib.bash"

make_model "$WORK/model"
make_tokens "$WORK/tokens.safetensors" 4000
write_config "$WORK/job.yaml" "$WORK/model" "$WORK/ckpt.h5" "  act_order: true
sweep:
  bits: [4, 3]"
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" >"$WORK/q.out" 2>"$WORK/q.err" || { cat "$WORK/q.err"; fail "quantize"; }
for run in w4g32-act w3g32-act; do
  "$BIN" export "$WORK/ckpt.h5" --run $run --out "$WORK/export-$run" 2>"$WORK/e.err" || { cat "$WORK/e.err"; fail "export $run"; }
done
if "$BIN" export "$WORK/ckpt.h5" --out "$WORK/x" 2>"$WORK/e2.err"; then fail "export without --run on a 2-run checkpoint"; fi
grep -q "holds 2 runs" "$WORK/e2.err" || fail "no clear error for a missing --run"

/usr/bin/python3 - "$WORK" <<'PY' || fail "export checks"
import json, struct, sys
import h5py, numpy as np
work = sys.argv[1]

def load_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    kinds = {"I32": np.int32, "F16": np.float16, "F32": np.float32}
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=kinds[v["dtype"]]).reshape(v["shape"])
    return out

def unpack_rows(packed, n, bits):
    """AutoGPTQ's layout read as an LSB-first bit stream along dim 0: value k at bits k*bits..."""
    words = packed.astype(np.uint32).astype(np.uint64)
    out = np.zeros((n,) + packed.shape[1:], dtype=np.int64)
    for k in range(n):
        bit = k * bits
        w, s = divmod(bit, 32)
        v = words[w] >> np.uint64(s)
        if s + bits > 32:
            v |= words[w + 1] << np.uint64(32 - s)
        out[k] = (v & np.uint64((1 << bits) - 1)).astype(np.int64)
    return out

ck = h5py.File(f"{work}/ckpt.h5", "r")
orig = load_safetensors(f"{work}/model/model.safetensors")
for run, bits in (("w4g32-act", 4), ("w3g32-act", 3)):
    ex = load_safetensors(f"{work}/export-{run}/model.safetensors")
    cfg = json.load(open(f"{work}/export-{run}/config.json"))
    qc = cfg["quantization_config"]
    assert qc["bits"] == bits and qc["group_size"] == 32 and qc["desc_act"] is True and qc["quant_method"] == "gptq", qc
    assert cfg["torch_dtype"] == "float32", cfg["torch_dtype"]
    for b in range(2):
        for layer in ("self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"):
            g = ck[f"runs/{run}/blocks/{b}/{layer}"]
            codes, zeros, scales, g_idx = g["codes"][()], g["zeros"][()], g["scales"][()], g["g_idx"][()]
            rows, cols = codes.shape
            p = f"transformer.h.{b}.{layer}."
            qw, qz = ex[p + "qweight"], ex[p + "qzeros"]
            assert qw.shape == (cols * bits // 32, rows), qw.shape
            assert (unpack_rows(qw, cols, bits).T == codes).all(), f"{run} {b} {layer}: qweight"
            z = unpack_rows(qz.T, rows, bits).T + 1          # v1: stored zero - 1
            assert (z == zeros).all(), f"{run} {b} {layer}: qzeros"
            assert (ex[p + "scales"] == scales).all()          # the model's dtype (fp32 here)
            assert (ex[p + "g_idx"] == g_idx).all()
            assert (ex[p + "bias"] == g["bias"][()]).all() and (ex[p + "bias"] == orig[p + "bias"]).all()
            assert p + "weight" not in ex
    for k, v in orig.items():
        if not any(s in k for s in ("query_key_value", "dense")):
            assert (ex[k] == v).all(), k
    print(f"export {run}: qweight/qzeros/scales/g_idx/bias match the checkpoint; {len(ex)} tensors")
PY
echo "export: ok"
