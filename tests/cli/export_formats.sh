#!/usr/bin/env bash
# `gptqd export --format gptq | gptq_v2 | compressed-tensors`, read back with independent numpy
# readers of each layout, against the checkpoint: codes, zeros (v1 zero - 1, v2 as is, ct
# signed + offset), scales and bias in the model's dtype (exact bias), --dtype conversion, the
# tied head written as lm_head.weight, the config keys each loader reads (and nothing AutoGPTQ
# warns about in quantize_config.json), meta.quantizer naming gptqd; and the refusals:
# --for vllm of an asymmetric run, compressed-tensors of act_order without static groups.
source "$(dirname "$0")/lib.bash"

make_model "$WORK/model"
make_tokens "$WORK/tokens.safetensors" 4000
write_config "$WORK/job.yaml" "$WORK/model" "$WORK/ckpt.h5" "  act_order: true
sweep:
  sym: [true, false]
  static_groups: [true, false]"
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" >"$WORK/q.out" 2>"$WORK/q.err" || { cat "$WORK/q.err"; fail "quantize"; }
# The quantize warning: one line naming the asymmetric runs.
n=$(grep -c "vLLM will not serve" "$WORK/q.out" "$WORK/q.err" | awk -F: '{s+=$2} END {print s}')
[[ $n == 1 ]] || { cat "$WORK/q.out" "$WORK/q.err"; fail "quantize: expected one vLLM warning line, got $n"; }
grep -h "vLLM will not serve" "$WORK/q.out" "$WORK/q.err" | grep -q "w4g32-act-static: asymmetric" || fail "warning does not name w4g32-act-static"
grep -h "vLLM will not serve" "$WORK/q.out" "$WORK/q.err" | grep -q "w4g32-sym" && fail "warning names a symmetric run"

ex() { "$BIN" export "$WORK/ckpt.h5" "$@" 2>>"$WORK/e.err" || { cat "$WORK/e.err"; fail "export $*"; }; }
ex --run w4g32-sym-act-static --out "$WORK/v1-sym" --format gptq
ex --run w4g32-act-static --out "$WORK/v1-asym"
ex --run w4g32-act --out "$WORK/v2-asym-act" --format gptq_v2
ex --run w4g32-act-static --out "$WORK/ct-asym" --format compressed-tensors
ex --run w4g32-sym-act-static --out "$WORK/ct-sym-bf16" --format compressed-tensors --dtype bfloat16
ex --run w4g32-sym-act-static --out "$WORK/vllm" --for vllm
if "$BIN" export "$WORK/ckpt.h5" --run w4g32-act --out "$WORK/x" --for vllm 2>"$WORK/r1.err"; then fail "--for vllm took an asymmetric run"; fi
grep -q "vLLM cannot serve run w4g32-act: asymmetric" "$WORK/r1.err" || { cat "$WORK/r1.err"; fail "no reason for --for vllm"; }
if "$BIN" export "$WORK/ckpt.h5" --run w4g32-sym-act --out "$WORK/x" --format compressed-tensors 2>"$WORK/r2.err"; then fail "compressed-tensors took act_order without static groups"; fi
grep -q "compressed-tensors stores contiguous groups only" "$WORK/r2.err" || { cat "$WORK/r2.err"; fail "no reason for the ct refusal"; }
if "$BIN" export "$WORK/ckpt.h5" --run w4g32-act --out "$WORK/x" --format gptq_v3 2>"$WORK/r3.err"; then fail "took --format gptq_v3"; fi
grep -q "gptq, gptq_v2, compressed-tensors" "$WORK/r3.err" || fail "no list of formats"

/usr/bin/python3 - "$WORK" <<'PY' || fail "export format checks"
import json, struct, sys
import h5py, numpy as np
work = sys.argv[1]

def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    kinds = {"I32": np.int32, "I64": np.int64, "F16": np.float16, "F32": np.float32, "BF16": np.uint16}
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        a = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=kinds[v["dtype"]]).reshape(v["shape"])
        if v["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[k] = (v["dtype"], a)
    return out, head.get("__metadata__", {})

def bits_along0(packed, n, bits):
    """LSB-first bit stream along dim 0 (value k at bits k*bits...), the GPTQ layouts."""
    w = packed.astype(np.uint32).astype(np.uint64)
    out = np.zeros((n,) + packed.shape[1:], dtype=np.int64)
    for k in range(n):
        q, s = divmod(k * bits, 32)
        v = w[q] >> np.uint64(s)
        if s + bits > 32:
            v |= w[q + 1] << np.uint64(32 - s)
        out[k] = (v & np.uint64((1 << bits) - 1)).astype(np.int64)
    return out

ck = h5py.File(f"{work}/ckpt.h5", "r")
orig, _ = load(f"{work}/model/model.safetensors")
layers = ("self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h")

def check(dirname, run, fmt, dtype):
    ex, meta = load(f"{work}/{dirname}/model.safetensors")
    cfg = json.load(open(f"{work}/{dirname}/config.json"))
    assert cfg["torch_dtype"] == dtype, cfg["torch_dtype"]
    assert meta.get("quantizer", "").startswith("gptqd:"), meta
    qc = cfg["quantization_config"]
    st = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[dtype]
    npdt = {"float32": np.float32, "float16": np.float16, "bfloat16": None}[dtype]
    def as_dt(x):
        x = np.asarray(x, dtype=np.float32)
        if npdt is None:   # bf16, round to nearest even
            u = x.view(np.uint32).astype(np.uint64)
            u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
            return u.astype(np.uint32).view(np.float32)
        return x.astype(npdt)
    r = ck[f"runs/{run}"]
    bits, sym = 4, bool(r.attrs["sym"])
    if fmt in ("gptq", "gptq_v2"):
        qf = json.load(open(f"{work}/{dirname}/quantize_config.json"))
        assert qc["quant_method"] == "gptq" and qc["checkpoint_format"] == fmt, qc
        assert qc["meta"]["quantizer"][0].startswith("gptqd:"), qc
        assert "gptqmodel" not in json.dumps(qc) + json.dumps(qf)
        if fmt == "gptq":   # AutoGPTQ 0.7.1's BaseQuantizeConfig fields only
            assert set(qf) <= {"bits", "group_size", "damp_percent", "desc_act", "static_groups", "sym",
                               "true_sequential", "model_file_base_name"}, qf
        else:
            assert qf["checkpoint_format"] == "gptq_v2" and qf["meta"]["quantizer"][0].startswith("gptqd:")
    else:
        assert qc["quant_method"] == "compressed-tensors" and qc["format"] == "pack-quantized", qc
        w = qc["config_groups"]["group_0"]["weights"]
        assert w["num_bits"] == 4 and w["symmetric"] == sym and w["strategy"] == "group" and w["group_size"] == 32, w
        assert qc["ignore"] == ["lm_head"]
    for b in range(2):
        for layer in layers:
            g = r[f"blocks/{b}/{layer}"]
            codes, zeros, scales, g_idx = g["codes"][()], g["zeros"][()], g["scales"][()], g["g_idx"][()]
            rows, cols = codes.shape
            p = f"transformer.h.{b}.{layer}."
            if fmt in ("gptq", "gptq_v2"):
                qw, qz = ex[p + "qweight"][1], ex[p + "qzeros"][1]
                assert (bits_along0(qw, cols, bits).T == codes).all(), (dirname, p, "qweight")
                z = bits_along0(qz.T, rows, bits).T + (1 if fmt == "gptq" else 0)
                if fmt == "gptq":
                    ok = (z == zeros) | ((zeros == 0) & (z == 16))
                else:
                    ok = z == zeros
                assert ok.all(), (dirname, p, "qzeros")
                assert ex[p + "scales"][0] == st and (ex[p + "scales"][1] == as_dt(scales)).all()
                assert (ex[p + "g_idx"][1] == g_idx).all()
            else:
                wp = ex[p + "weight_packed"][1]
                assert wp.shape == (rows, cols * bits // 32), wp.shape
                q = bits_along0(wp.T, cols, bits).T - 8      # signed
                assert (q + 8 == codes).all(), (dirname, p, "weight_packed")
                assert (ex[p + "weight_shape"][1] == [rows, cols]).all()
                assert ex[p + "weight_scale"][0] == st and (ex[p + "weight_scale"][1] == as_dt(scales.T)).all()
                if sym:
                    assert p + "weight_zero_point" not in ex and (zeros == 8).all()
                else:
                    zp = bits_along0(ex[p + "weight_zero_point"][1], rows, bits) - 8   # [out, groups]
                    assert (zp + 8 == zeros.T).all(), (dirname, p, "zero point")
                assert (g_idx == np.arange(cols) // 32).all()
            bias = ex[p + "bias"]
            assert bias[0] == st and (bias[1] == as_dt(g["bias"][()])).all()
            if dtype == "float32":
                assert (bias[1] == orig[p + "bias"][1]).all(), "bias not exact"
            assert p + "weight" not in ex
    for k, (dt, v) in orig.items():
        if not any(s in k for s in ("query_key_value", "dense")):
            assert ex[k][0] == st and (ex[k][1] == as_dt(v)).all(), k
    # The tied head, written for AutoGPTQ's loader.
    assert (ex["lm_head.weight"][1] == ex["transformer.word_embeddings.weight"][1]).all()
    print(f"{dirname}: {fmt} {dtype}, {len(ex)} tensors match the checkpoint")

check("v1-sym", "w4g32-sym-act-static", "gptq", "float32")
check("v1-asym", "w4g32-act-static", "gptq", "float32")
check("v2-asym-act", "w4g32-act", "gptq_v2", "float32")
check("ct-asym", "w4g32-act-static", "compressed-tensors", "float32")
check("ct-sym-bf16", "w4g32-sym-act-static", "compressed-tensors", "bfloat16")
check("vllm", "w4g32-sym-act-static", "gptq", "float16")
PY
echo "export formats: ok"
