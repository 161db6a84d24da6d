#!/usr/bin/env bash
# gptqd eval end to end: a random BLOOM with the repository's tokenizer (vocab 4096) is quantized
# at 4 and 3 bits on 2 ranks; `gptqd eval` prints one table (original, RTN and GPTQ per run)
# whose numbers do not depend on the rank count, whose GPTQ and RTN rows are the perplexities of
# models holding the checkpoint's dequantized weights and numpy's round-to-nearest weights, and
# which refuses an unknown run, an incomplete run and an eval text shorter than one window.
source "$(dirname "$0")/lib.bash"

python3 "$SRC/scripts/make_tiny_bloom.py" "$WORK/model" --layers 2 --hidden 64 --heads 4 --vocab 4096
cp "$SRC/models/tiny-bloom/tokenizer.json" "$WORK/model/"
make_tokens "$WORK/tokens.safetensors" 4000
head -n 1000 "$SRC/data/austen-eval.txt" >"$WORK/eval.txt"   # ~14k tokens: 200+ windows of 64

# eval_config FILE MODEL_DIR CHECKPOINT EVAL_TEXT
eval_config() {
  write_config "$1" "$2" "$3" "sweep:
  bits: [4, 3]
eval:
  text: $4
  seqlen: 64"
}
eval_config "$WORK/job.yaml" "$WORK/model" "$WORK/out/ckpt.h5" "$WORK/eval.txt"

"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" >"$WORK/q.out" 2>"$WORK/q.err" ||
  { cat "$WORK/q.err"; fail "quantize failed"; }

"${MPIRUN[@]}" -np 2 "$BIN" eval "$WORK/job.yaml" >"$WORK/e2.out" 2>"$WORK/e2.err" ||
  { cat "$WORK/e2.err"; fail "eval on 2 ranks failed"; }
cat "$WORK/e2.out"
grep -q "windows of 64 tokens" "$WORK/e2.out" || fail "no header line"
[[ $(grep -c "eval .*perplexity" "$WORK/e2.err") -eq 5 ]] || { cat "$WORK/e2.err"; fail "expected 5 progress lines"; }

# table_ppl FILE RUN METHOD: the perplexity column of that row
table_ppl() {
  awk -v run="$2" -v method="$3" '$1 == run && $4 == method { print $5 }' "$1"
}
for row in "- original" "w4g32 RTN" "w4g32 GPTQ" "w3g32 RTN" "w3g32 GPTQ"; do
  read -r run method <<<"$row"
  [[ -n $(table_ppl "$WORK/e2.out" "$run" "$method") ]] || fail "no row '$row'"
done
[[ $(grep -cE " (original|RTN|GPTQ) " "$WORK/e2.out") -eq 5 ]] || fail "expected exactly 5 rows"

# close A B: relative difference below 1e-5 (BLAS rounding differs with threads and ranks)
close() {
  python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 1e-5 * abs(b))" "$1" "$2"
}

# One rank, one run: the same numbers.
"$BIN" eval "$WORK/job.yaml" --run w3g32 >"$WORK/e1.out" 2>"$WORK/e1.err" ||
  { cat "$WORK/e1.err"; fail "eval --run w3g32 failed"; }
[[ $(grep -cE " (original|RTN|GPTQ) " "$WORK/e1.out") -eq 3 ]] || { cat "$WORK/e1.out"; fail "--run: expected 3 rows"; }
grep -q "^w4g32" "$WORK/e1.out" && fail "--run w3g32 also evaluated w4g32"
for row in "- original" "w3g32 RTN" "w3g32 GPTQ"; do
  read -r run method <<<"$row"
  close "$(table_ppl "$WORK/e1.out" "$run" "$method")" "$(table_ppl "$WORK/e2.out" "$run" "$method")" ||
    fail "'$row' differs between 1 and 2 ranks"
done

# Independent weights: models holding the checkpoint's dequantized w3g32 weights (h5py) and
# numpy's round to nearest (the quantizer of DESIGN.md section 4, groups of 32) of the original.
/usr/bin/python3 - "$WORK" <<'PY' || fail "could not write the comparison models"
import json, os, shutil, struct, sys
import h5py, numpy as np
work = sys.argv[1]
src = os.path.join(work, "model")

def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(h["shape"])
    return out

def write_st(path, tensors):
    header, off, blobs = {}, 0, []
    for name, t in tensors.items():
        b = np.ascontiguousarray(t, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

def rtn(w, bits, group):
    maxq = np.float32(2 ** bits - 1)
    out = np.empty_like(w)
    for c0 in range(0, w.shape[1], group):
        g = w[:, c0:c0 + group]
        xmin = np.minimum(g.min(axis=1), 0).astype(np.float32)
        xmax = np.maximum(g.max(axis=1), 0).astype(np.float32)
        same = xmin == xmax
        xmin[same], xmax[same] = -1, 1
        scale = ((xmax - xmin) / maxq).astype(np.float32)[:, None]
        zero = np.round(-xmin[:, None] / scale).astype(np.float32)
        q = np.clip(np.round(g / scale) + zero, 0, maxq)
        out[:, c0:c0 + group] = scale * (q - zero)
    return out

tensors = read_st(os.path.join(src, "model.safetensors"))
ckpt = h5py.File(os.path.join(work, "out/ckpt.h5"), "r")
modules = ["self_attention.query_key_value", "self_attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"]
for kind in ("gptq", "rtn"):
    new = dict(tensors)
    for b in range(2):
        for m in modules:
            name = f"transformer.h.{b}.{m}.weight"
            if kind == "rtn":
                new[name] = rtn(tensors[name], 3, 32)
            else:
                lay = ckpt[f"runs/w3g32/blocks/{b}/{m}"]
                codes, scales, zeros, g_idx = (lay[k][()] for k in ("codes", "scales", "zeros", "g_idx"))
                new[name] = scales[g_idx, :].T * (codes.astype(np.float32) - zeros[g_idx, :].T)
    dst = os.path.join(work, "model-" + kind)
    os.makedirs(dst)
    for f in ("config.json", "tokenizer.json"):
        shutil.copy(os.path.join(src, f), dst)
    write_st(os.path.join(dst, "model.safetensors"), new)
PY
# These evals want only the original row of models whose linears are not the checkpoint's own
# weights, which the checkpoint's weights digests refuse (tests/cli/weights_changed.sh): they
# evaluate a copy without them, as a file made before the digests is read.
cp "$WORK/out/ckpt.h5" "$WORK/out/ckpt-nodigest.h5"
/usr/bin/python3 -c "import h5py,sys; del h5py.File(sys.argv[1],'r+')['weights_digest']" "$WORK/out/ckpt-nodigest.h5"
for kind in gptq rtn; do
  eval_config "$WORK/job-$kind.yaml" "$WORK/model-$kind" "$WORK/out/ckpt-nodigest.h5" "$WORK/eval.txt"
  "$BIN" eval "$WORK/job-$kind.yaml" --run w3g32 >"$WORK/e-$kind.out" 2>"$WORK/e-$kind.err" ||
    { cat "$WORK/e-$kind.err"; fail "eval of model-$kind failed"; }
done
close "$(table_ppl "$WORK/e-gptq.out" - original)" "$(table_ppl "$WORK/e2.out" w3g32 GPTQ)" ||
  fail "the GPTQ row is not the perplexity of the checkpoint's weights"
close "$(table_ppl "$WORK/e-rtn.out" - original)" "$(table_ppl "$WORK/e2.out" w3g32 RTN)" ||
  fail "the RTN row is not the perplexity of numpy's round-to-nearest weights"

# Refusals: one error line naming the culprit, exit code 1, on every rank count.
expect_error() {  # expect_error NEEDLE ARGS...
  local needle=$1; shift
  if "${MPIRUN[@]}" -np 2 "$BIN" eval "$@" >"$WORK/bad.out" 2>"$WORK/bad.err"; then
    fail "eval $* succeeded"
  fi
  grep -q "error:.*$needle" "$WORK/bad.err" || { cat "$WORK/bad.err"; fail "eval $*: no error naming '$needle'"; }
}
expect_error "no such run.*w4g32, w3g32" "$WORK/job.yaml" --run w5g1
cp "$WORK/out/ckpt.h5" "$WORK/out/partial.h5"
/usr/bin/python3 -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); f['runs/w3g32/complete'][1] = 0" \
  "$WORK/out/partial.h5"
eval_config "$WORK/job-partial.yaml" "$WORK/model" "$WORK/out/partial.h5" "$WORK/eval.txt"
expect_error "run w3g32 .* incomplete: block(s) 1 of 2 missing" "$WORK/job-partial.yaml"
"$BIN" eval "$WORK/job-partial.yaml" --run w4g32 >/dev/null 2>&1 || fail "a complete run of a partial file was refused"
echo "It is a truth universally acknowledged." >"$WORK/short.txt"
eval_config "$WORK/job-short.yaml" "$WORK/model" "$WORK/out/ckpt.h5" "$WORK/short.txt"
expect_error "eval.text .*short.txt" "$WORK/job-short.yaml"
write_config "$WORK/job-noeval.yaml" "$WORK/model" "$WORK/out/ckpt.h5"
expect_error "eval.text is not set" "$WORK/job-noeval.yaml"
echo "eval: ok"
