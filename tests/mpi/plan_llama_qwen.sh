#!/usr/bin/env bash
# `gptqd plan` sizes Llama-3.1-405B and Qwen2.5-72B from their published config.json alone
# (configs/models/<name>/ holds config.json and README.md, no weights) on 8 ranks of 80 GB, and
# the figures docs/plan-llama-qwen.md quotes are the ones it prints. The memory columns are
# recomputed here from the shapes: grouped-query k/v projections (n_kv_heads x head_dim rows),
# the SiLU-gated MLP (gate, up, down), Qwen2's q/k/v biases, the untied LM head left out of the
# parameter count and of what a rank reads (it is not quantized). Runs in well under a second.
source "$(dirname "$0")/../cli/lib.bash"
cd "$SRC"  # model.path is relative to the repository root

for name in llama-3.1-405b qwen2.5-72b; do
  [[ $(ls "$SRC/configs/models/$name" | tr '\n' ' ') == "README.md config.json " ]] ||
    fail "configs/models/$name must hold config.json and README.md only"
  "$BIN" plan "configs/$name.yaml" --ranks 8 --gpu-mem 80GiB >"$WORK/$name.out" 2>"$WORK/$name.err" ||
    { cat "$WORK/$name.err"; fail "plan $name --ranks 8 failed"; }
  python3 - "$WORK/$name.out" "$name" "$SRC/docs/plan-llama-qwen.md" <<'PY' ||
import re, sys
text, name, doc = open(sys.argv[1]).read(), sys.argv[2], open(sys.argv[3]).read()
GiB = 2**30
# name: layers, hidden, heads, kv heads, ffn, vocab, qkv bias; doc figures at 8 ranks
M = {"llama-3.1-405b": (126, 16384, 128, 8, 53248, 128256, False, "50.8 min", "47.43", "60.41"),
     "qwen2.5-72b":    (80, 8192, 64, 8, 29568, 152064, True, "8.0 min", "14.93", "17.34")}
L, h, nh, nkv, f, vocab, bias, run, peak_doc, host_doc = M[name]
hd = h // nh
q, kv = nh * hd, nkv * hd
block = 2 * h * q + 2 * h * kv + 3 * h * f + 2 * h + ((q + 2 * kv) if bias else 0)
emb = vocab * h
params = L * block + emb  # + the final norm's h: below the printed precision
assert f"{L} blocks, hidden {h}, {nh} heads, vocab {vocab}; {params / 1e9:.1f} B parameters, {params * 2 / 1e9:.1f} GB as bfloat16" in text, "model line"
assert f"8 rank(s) = 1 stage(s) x 8 replica(s): stage 0 blocks [0, {L})" in text, "layout line"
assert f"estimate: one run {run}" in text, "one-run estimate"
rows = re.findall(r"^ +(\d+) +0 +(\d+) +\[0, (\d+)\) +16 +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +gpu +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +ok$", text, re.M)
assert len(rows) == 8, f"{len(rows)} rank rows"
for r in rows:
    read, blk, e, act, ws, scores, hess, gptq, peak, host = map(float, r[3:])
    assert abs(read - (L * block + emb) * 2 / GiB) < 0.01, read
    assert abs(blk - block * 4 / GiB) < 0.01, blk
    assert abs(e - emb * 4 / GiB) < 0.01, e
    assert abs(act - 17 * 2048 * h * 4 / GiB) < 0.01, act
    assert abs(hess - 4 * f * f / GiB) < 0.01, "true_sequential: the down_proj accumulator alone"
    assert gptq >= 12 * f * f / GiB, "down_proj's factor U and its fp64 copy"
    assert abs(peak - (act + max(e, blk + ws + max(scores + hess, gptq)))) < 0.03 and peak <= 80
    assert f"{peak:.2f}" == peak_doc and f"{host:.2f}" == host_doc, (peak, host)
# The doc quotes these figures for this model at 8 ranks.
for s in (run, peak_doc, host_doc):
    assert s in doc, f"docs/plan-llama-qwen.md does not quote {s}"
print(f"{name}: {L} blocks, block {blk:.2f} GiB fp32, peak {peak_doc} GiB, one run {run}")
PY
    { cat "$WORK/$name.out"; fail "plan $name --ranks 8 is not what the doc says"; }
done
echo "plan llama/qwen: ok"
