#!/usr/bin/env bash
# `gptqd plan` sizes Llama-3.1-405B and Qwen2.5-72B from their published config.json alone
# (configs/models/<name>/ holds config.json and README.md, no weights) on 8 ranks of 80 GB, and
# the figures docs/plan-llama-qwen.md quotes are the ones it prints. The memory columns are
# recomputed here from the shapes: grouped-query k/v projections (n_kv_heads x head_dim rows),
# the SiLU-gated MLP (gate, up, down), Qwen2's q/k/v biases, the untied LM head and the final
# norm in the parameter count but not in what a rank reads (the head is not quantized), and the
# state true-sequential keeps to run a block in one pass (parallel.sequential_passes auto, the
# "kept" column: down_proj's input). So are the per-phase TFLOP of the time model
# (coordinator/plan_estimate.cpp): the forward, one full pass, from each true-sequential group's
# linear shapes plus attention over n_head x head_dim, one Hessian and
# one Hessian allreduce per group, every linear factorized once per stage across its 8 replicas
# (parallel.factorization auto's choice here) with its panel traffic and the gather of U. Runs in well under a second.
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
M = {"llama-3.1-405b": (126, 16384, 128, 8, 53248, 128256, False, "13.0 min", "47.99", "60.41", "405.9 B"),
     "qwen2.5-72b":    (80, 8192, 64, 8, 29568, 152064, True, "2.0 min", "16.91", "17.34", "72.7 B")}
L, h, nh, nkv, f, vocab, bias, run, peak_doc, host_doc, params_doc = M[name]
hd = h // nh
q, kv = nh * hd, nkv * hd
block = 2 * h * q + 2 * h * kv + 3 * h * f + 2 * h + ((q + 2 * kv) if bias else 0)
emb = vocab * h
params = L * block + 2 * emb + h  # blocks, embedding, untied lm_head, final norm
assert f"{L} blocks, hidden {h}, {nh} heads, vocab {vocab}; {params / 1e9:.1f} B parameters, {params * 2 / 1e9:.1f} GB as bfloat16" in text, "model line"
assert f"{params / 1e9:.1f} B" == params_doc, f"{params / 1e9:.1f} B parameters, the published count is {params_doc}"
assert f"8 rank(s) = 1 stage(s) x 8 replica(s): stage 0 blocks [0, {L})" in text, "layout line"
assert "; true_sequential (parallel.sequential_passes auto); " in text, "work line"
assert f"estimate: one run {run}" in text, "one-run estimate"
rows = re.findall(r"^ +(\d+) +0 +(\d+) +\[0, (\d+)\) +16 +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +gpu +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +ok$", text, re.M)
assert len(rows) == 8, f"{len(rows)} rank rows"
for r in rows:
    read, blk, e, act, kept, ws, scores, hess, gptq, peak, host = map(float, r[3:])
    assert abs(read - (L * block + emb) * 2 / GiB) < 0.01, read
    # precision auto is sized as fast: the linears' weights resident in bf16.
    linear = 2 * h * q + 2 * h * kv + 3 * h * f
    assert abs(blk - (block * 4 - linear * 2) / GiB) < 0.01, blk
    assert abs(e - emb * 4 / GiB) < 0.01, e
    assert abs(act - 17 * 2048 * h * 4 / GiB) < 0.01, act
    assert abs(hess - 4 * f * f / GiB) < 0.01, "true_sequential: the down_proj accumulator alone"
    assert gptq >= 12 * f * f / GiB, "down_proj's factor U and its fp64 copy"
    # parallel.sequential_passes auto: true-sequential in one pass; the state it keeps is the
    # widest group input, down_proj's f floats per token, for the replica's 16 samples.
    assert abs(kept - 4 * 16 * 2048 * f / GiB) < 0.01, ("kept", kept)
    assert abs(peak - (act + max(e, kept + blk + ws + max(scores + hess, gptq)))) < 0.03 and peak <= 80
    assert f"{peak:.2f}" == peak_doc and f"{host:.2f}" == host_doc, (peak, host)
# The time model's TFLOP per block and replica (16 samples of 2048 tokens), and GB of collectives.
T = 16 * 2048
groups = [(h, [q, kv, kv]), (q, [h]), (h, [f, f]), (f, [h])]  # (input width, output widths)
upto = [0.0]
for g, (c, outs) in enumerate(groups):
    upto.append(upto[-1] + sum(2 * T * o * c for o in outs) + (4 * T * 2048 * q if g == 0 else 0))
lin = [(o, c) for c, outs in groups for o in outs]
fwd = upto[-1]  # one pass: the kept state fits (asserted above), so no partial passes
hessian = sum(2 * T * c * c for c, _ in groups)
# parallel.factorization auto: 8 replicas share each factorization (coordinator/factorization_auto.h).
assert re.search(r"^factor   factorization auto: distributed, .* \(8 replicas per stage, cuSOLVERMp on their GPUs\)$", text, re.M), "factorization line"
factor = sum(4 / 3 * c ** 3 for _, c in lin) / 8
sweep = sum(o / 8 * c * c for o, c in lin)
gb = (sum(8 * c * c for c, _ in groups) + sum(4 * o * c * 7 / 8 for o, c in lin)
      + sum((12 / 8 ** 0.5 + 2) * c * c for _, c in lin)) / 1e9  # + the factorization's traffic
phases = [x / 1e12 for x in (fwd, hessian, factor, sweep, 4 * sweep, fwd + hessian + factor + 5 * sweep)]
t = re.search(r"^ +0 +\[0, (\d+)\) +" + r" +".join([r"([\d.]+)"] * 6) + r" +[\d.]+s +[\d.]+m?s +([\d.]+) ", text, re.M)
assert t and int(t[1]) == L, "time table"
for got, want in zip(map(float, t.groups()[1:7]), phases):
    assert abs(got - want) < 0.06, ("TFLOP per block", t.groups()[1:7], [round(x, 1) for x in phases])
assert abs(float(t[8]) - gb) < 0.06, ("GB of collectives per block", t[8], gb)
# The doc quotes these figures for this model at 8 ranks.
for s in (run, peak_doc, host_doc, params_doc, f"{phases[0]:.1f}", f"{phases[1]:.1f}", f"{phases[2]:.1f}"):
    assert s in doc, f"docs/plan-llama-qwen.md does not quote {s}"
print(f"{name}: {params_doc} parameters, {L} blocks, block {blk:.2f} GiB resident, peak {peak_doc} GiB, "
      f"forward/hessian/factor {phases[0]:.1f}/{phases[1]:.1f}/{phases[2]:.1f} TFLOP per block, one run {run}")
PY
    { cat "$WORK/$name.out"; fail "plan $name --ranks 8 is not what the doc says"; }
done
echo "plan llama/qwen: ok"
