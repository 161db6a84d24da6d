#!/usr/bin/env bash
# `gptqd plan` sizes BLOOM-176B from configs/bloom-176b/config.json alone (the directory holds no
# weights and no tokenizer; the job's calibration text does not exist here either) on 8, 16 and
# 64 ranks of 80 GB. The printed numbers are recomputed here from the published shapes: the
# parameter count, the fp32 block and embedding, each replica's activations and the state
# true-sequential keeps to run a block in one pass (parallel.sequential_passes auto; the "kept"
# column), the forward's TFLOP per block (one full pass), the layout
# (rank = stage x replicas + replica, contiguous blocks covering [0, 70)), and the automatic
# choice (the fastest layout that fits). A layout that does not fit, and one that cannot work,
# are refused with one error line.
source "$(dirname "$0")/../cli/lib.bash"
CONFIG=$SRC/configs/bloom-176b.yaml

[[ $(ls "$SRC/configs/bloom-176b") == config.json ]] || fail "configs/bloom-176b must hold config.json only"
cd "$SRC"  # model.path is relative to the repository root

for n in 8 16 64; do
  "$BIN" plan "$CONFIG" --ranks "$n" >"$WORK/plan$n.out" 2>"$WORK/plan$n.err" ||
    { cat "$WORK/plan$n.err"; fail "plan --ranks $n failed"; }
  python3 - "$WORK/plan$n.out" "$n" <<'PY' || { cat "$WORK/plan$n.out"; fail "plan --ranks $n is not sane"; }
import re, sys
text, n = open(sys.argv[1]).read(), int(sys.argv[2])
GiB = 2**30
h, f, vocab, layers, nsamples, seq = 14336, 4 * 14336, 250880, 70, 128, 2048
block = 12 * h * h + 13 * h
emb = vocab * h + 2 * h
params = layers * block + emb
assert f"{params / 1e9:.1f} B parameters, {params * 2 / 1e9:.1f} GB as bf16" in text, "model line"
assert "; true_sequential (parallel.sequential_passes auto); " in text, "work line"

m = re.search(r"layout +(\d+) rank\(s\) = (\d+) stage\(s\) x (\d+) replica\(s\)", text)
assert m and int(m[1]) == n, "layout line"
S, R = int(m[2]), int(m[3])
assert S * R == n

# The layouts table: the chosen one (*) is the fastest that fits.
def secs(t):
    v, u = t.split()
    return float(v) * {"s": 1, "min": 60, "h": 3600}[u]
rows = re.findall(r"^([* ]) +(\d+) +(\d+) +([\d.]+ (?:s|min|h)) +([\d.]+ (?:s|min|h)) +[\d.]+ GiB +(yes|no)  (replicated|distributed)$", text, re.M)
assert rows, "layouts table"
# parallel.factorization auto (the job file sets none): every layout with replicas shares the
# factorization (263 TFLOP per block against tens of GB of traffic), one replica has nothing to
# share; the chosen layout's line gives both estimates of the whole job, distributed the smaller.
for r in rows:
    assert r[6] == ("distributed" if int(r[2]) > 1 else "replicated"), r
fline = re.search(r"^factor   factorization auto: distributed, estimated ([\d.]+ (?:s|min|h)) for the job against ([\d.]+ (?:s|min|h)) replicated \((\d+) replicas per stage, cuSOLVERMp on their GPUs\)$", text, re.M)
assert fline and secs(fline[1]) < secs(fline[2]), "the factorization line"
fit = [r for r in rows if r[5] == "yes"]
chosen = [r for r in rows if r[0] == "*"]
assert len(chosen) == 1 and int(chosen[0][1]) == S
assert secs(chosen[0][4]) == min(secs(r[4]) for r in fit), "auto did not pick the fastest fitting layout"
assert int(fline[3]) == int(chosen[0][2]) and fline[1] == chosen[0][4], "the factorization line is the chosen layout's"

# Per rank: placement, contiguous blocks, memory recomputed from the shapes.
ranks = re.findall(r"^ +(\d+) +(\d+) +(\d+) +\[(\d+), (\d+)\) +(\d+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +(gpu|host) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +(\S.*)$", text, re.M)
assert len(ranks) == n, f"{len(ranks)} rank rows"
stage_blocks = {}
for row in ranks:
    rank, stage, rep, b0, b1, samples = map(int, row[:6])
    read, blk, e, act = map(float, row[6:10])
    kept, ws, scores, hess, gptq, peak, host = map(float, row[11:18])
    assert (stage, rep) == divmod(rank, R), f"rank {rank} placed at stage {stage} replica {rep}"
    stage_blocks.setdefault(stage, (b0, b1))
    assert stage_blocks[stage] == (b0, b1)
    assert samples == nsamples * (rep + 1) // R - nsamples * rep // R
    # precision auto is sized as fast: the linears' 12 h^2 weights resident in bf16.
    assert abs(blk - (block * 4 - 12 * h * h * 2) / GiB) < 0.01, blk
    assert abs(e - (emb * 4 / GiB if stage == 0 else 0)) < 0.01, e
    assert row[10] == "gpu", "activations fit on the device"
    assert abs(act - (samples + 1) * seq * h * 4 / GiB) < 0.01, act
    assert abs(read - ((b1 - b0) * block + (emb if stage == 0 else 0)) * 2 / GiB) < 0.01, read
    assert abs(ws - seq * (7 * h + f) * 4 / GiB) < 0.01, ws
    assert abs(hess - 4 * f * f / GiB) < 0.01, "true_sequential: the 4h_to_h accumulator alone"
    assert gptq >= 12 * f * f / GiB, "the 4h_to_h factor U and its fp64 copy"
    # parallel.sequential_passes auto: true-sequential in one pass, its kept state (the widest
    # group input, 4h_to_h's f floats per token, for all the replica's samples) beside the peak.
    assert abs(kept - 4 * samples * seq * f / GiB) < 0.01, ("kept", kept)
    assert abs(peak - (act + max(e, kept + blk + ws + max(scores + hess, gptq)))) < 0.03 and peak <= 80, peak
    assert row[18] == "ok", row[18]
# The forward of a block in one pass: one full pass, 2T(4h^2 + 2hf) + 4T seq h (attention), T the
# replica's tokens (every stage has the same replicas, the largest one's samples).
T = (nsamples + R - 1) // R * seq
fwd = (2 * T * (4 * h * h + 2 * h * f) + 4 * T * seq * h) / 1e12
times = re.findall(r"^ +(\d+) +\[\d+, \d+\) +([\d.]+) ", text, re.M)
assert len(times) == S and all(abs(float(t[1]) - fwd) < 0.06 for t in times), ("forward TFLOP per block", times, fwd)
edges = [stage_blocks[s] for s in range(S)]
assert edges[0][0] == 0 and edges[-1][1] == layers and all(a[1] == b[0] and a[0] < a[1] for a, b in zip(edges, edges[1:] + [(layers, layers)]))
print(f"{n} ranks: {S} stage(s) x {R} replica(s), stages {edges}; " + re.search(r"estimate: (one run [^;]*)", text)[1])
PY
  # The job file as shipped plans at the model's best time: no layout under either explicit
  # factorization is faster than what auto chose.
  for fz in replicated distributed; do
    "$BIN" plan "$CONFIG" --ranks "$n" --factorization "$fz" >"$WORK/plan$n-$fz.out" ||
      fail "plan --ranks $n --factorization $fz failed"
  done
  python3 - "$WORK/plan$n.out" "$WORK/plan$n-replicated.out" "$WORK/plan$n-distributed.out" <<'PY' ||
import re, sys
def secs(t):
    v, u = t.split()
    return float(v) * {"s": 1, "min": 60, "h": 3600}[u]
def rows(path):
    return re.findall(r"^([* ]) +(\d+) +(\d+) +([\d.]+ (?:s|min|h)) +([\d.]+ (?:s|min|h)) +[\d.]+ GiB +(yes|no)  (replicated|distributed)$", open(path).read(), re.M)
auto, rep, dis = (rows(p) for p in sys.argv[1:])
assert all(r[6] == "replicated" for r in rep) and all(r[6] == "distributed" or int(r[2]) == 1 for r in dis), "explicit settings as written"
chosen = secs([r for r in auto if r[0] == "*"][0][4])
best = min(secs(r[4]) for r in rep + dis if r[5] == "yes")
print(f"  job as shipped: {chosen / 60:.1f} min; best of every layout either way: {best / 60:.1f} min; replicated alone: {min(secs(r[4]) for r in rep if r[5] == 'yes') / 60:.1f} min")
assert chosen == best, "auto is not the model's best time"
PY
    fail "plan --ranks $n as shipped is not the model's best time"
done

# 64 ranks as 8 stages: byte-balanced, the embedding's stage takes fewer blocks.
"$BIN" plan "$CONFIG" --ranks 64 --stages 8 >"$WORK/p8.out" || fail "plan --stages 8 failed"
grep -q "64 rank(s) = 8 stage(s) x 8 replica(s): stage 0 blocks \[0, 7); stage 1 blocks \[7, 16)" "$WORK/p8.out" ||
  { cat "$WORK/p8.out"; fail "8 stages are not balanced by bytes"; }

# Too little memory: flagged, exit 1, one error line naming the rank.
if "$BIN" plan "$CONFIG" --ranks 16 --gpu-mem 40GiB >"$WORK/small.out" 2>"$WORK/small.err"; then
  fail "a layout that needs more than 40 GiB per rank was accepted"
fi
grep -q "DOES NOT FIT" "$WORK/small.out" || fail "no rank flagged as not fitting"
grep -q "error: the layout does not fit: rank 0 (stage 0) needs .* GiB of device memory, 40.0 GiB available" "$WORK/small.err" ||
  { cat "$WORK/small.err"; fail "the misfit is not named"; }

# A layout that cannot work.
if "$BIN" plan "$CONFIG" --ranks 16 --stages 3 >"$WORK/bad.out" 2>"$WORK/bad.err"; then fail "3 stages of 16 ranks accepted"; fi
grep -q "error: parallel.stages: 16 ranks cannot be split into 3 stages" "$WORK/bad.err" || { cat "$WORK/bad.err"; fail "bad refusal"; }
echo "plan: ok"
