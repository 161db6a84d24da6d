#!/usr/bin/env bash
# DESIGN.md §8 "the same job under 1, 2, 3 and 4 ranks gives the same checkpoint": a 4-block
# random BLOOM, a sweep of two runs (true_sequential on and off, act_order on), quantized under
# every stage x replica split of 1 to 4 ranks. Checked with h5py:
#  - the same replica count gives bit-identical files whatever the stage split (codes, scales,
#    zeros, g_idx, perm, bias and the stats) and wherever the activations live, so pipelining,
#    the streamed activations and host placement change nothing;
#  - other replica counts differ only by the Hessian's summation order: >= 99.9% identical
#    codes (and scales and zeros within 0.1%), every layer's GPTQ loss within 1% and the job's
#    total loss within 1e-4 of the 1-rank run. A code flipped at a rounding tie cascades along
#    its row through the error feedback, and whether a tie falls one way or the other depends
#    on the BLAS kernel: OpenBLAS's Prescott kernel (what it picks alone on a CPU it does not
#    know, and runs under OPENBLAS_CORETYPE=Prescott; gptqd otherwise takes the CPU's widest) flips 56 codes of 393216 with 4 replicas, +0.59% of one layer's
#    loss, total 6.7e-9 (measured); Haswell, SkylakeX and Cooperlake flip none (< 1.4e-6);
#  - every layer is reported once, by one replica, and every block is complete.
# GPTQD_TEST_INPUTS=original (the *_original.sh twin): the same guarantees when the stages
# quantize at the same time on the original model's inputs (worker/stage_concurrent.cpp).
# GPTQD_TEST_FACTORIZATION=distributed (the *_scalapack.sh twins) runs every layout with
# parallel.factorization: distributed: the same guarantees, the factorization also summed in
# another order with more than one replica (a ScaLAPACK grid per replica count). U then moves
# by ~1e-7 (fp32 rounding), and on these 64-column layers one code flipped at a rounding tie
# cascades along its row through the error feedback: 18 codes of a 64 x 64 layer, +0.6% of
# that layer's loss (measured), the same bound as above; the job's total loss stays within
# 1e-4 either way (measured: < 5e-8).
source "$(dirname "$0")/../cli/lib.bash"
FACTORIZATION=${GPTQD_TEST_FACTORIZATION:-replicated}

make_family_model "$WORK/model"
make_tokens "$WORK/tokens.safetensors" 4000

# ranks:stages[:activations placement] (2:2:host: the activations live in host memory and
# go through the device a micro-batch at a time, also as they stream between the stages)
LAYOUTS=(1:1 2:2 2:2:host 2:1 3:3 4:4 4:2 4:1)
# A mixture of experts shards its routed experts over the replicas (moe.experts: sharded, the
# default; worker/expert_shards.h): 2:1, 4:2 and 4:1 run that way with moe.exchange auto. The
# variants (a fourth field) run 2 or 4 replicas with the calibration sent to the experts' owners
# as activations or as partial Hessians, or with the experts replicated (every replica
# quantizing a slice of every expert's rows). replicated and hessians on 2 replicas must give the
# same codes bit for bit (two partial Hessians sum the same in either order; GPTQ's rows are
# independent given H); every variant is held to the same bounds against 1 rank as the layouts
# (with 4 replicas and 3 experts one replica owns none).
[[ $GPTQD_TEST_FAMILY == moe ]] &&
  LAYOUTS+=(2:1:device:replicated 2:1:device:hessians 2:1:device:activations 4:1:host:activations)
for lay in "${LAYOUTS[@]}"; do
  IFS=: read -r np st acts variant <<<"$lay"
  acts=${acts:-device}
  tag=${lay//:/x}
  moe=""
  case $variant in
    replicated) moe=$'\nmoe:\n  experts: replicated' ;;
    hessians | activations) moe=$'\nmoe:\n  exchange: '$variant ;;
  esac
  write_config "$WORK/$tag.yaml" "$WORK/model" "$WORK/$tag.h5" "  act_order: true
sweep:
  true_sequential: [true, false]
parallel:
  stages: $st
  activations: $acts
  factorization: $FACTORIZATION$moe"
  start=$(date +%s%N)
  timeout 300 "${MPIRUN[@]}" -np "$np" "$BIN" quantize "$WORK/$tag.yaml" --threads 1 \
    >"$WORK/$tag.out" 2>"$WORK/$tag.err" || { cat "$WORK/$tag.err"; fail "$np ranks, $st stages: quantize failed"; }
  echo "$np rank(s) = $st stage(s) x $((np / st)) replica(s): $((($(date +%s%N) - start) / 1000000)) ms"
  grep -q "plan (parallel.stages): $np rank(s) = $st stage(s) x $((np / st)) replica(s)" "$WORK/$tag.err" ||
    { cat "$WORK/$tag.err"; fail "$tag: not laid out as $st stages x $((np / st)) replicas"; }
  if [[ $GPTQD_TEST_INPUTS == original && $st -gt 1 ]]; then
    grep -q "the original model's input forwarded through blocks" "$WORK/$tag.err" ||
      { cat "$WORK/$tag.err"; fail "$tag: the stages did not forward the original model first"; }
  fi
  if [[ $FACTORIZATION == distributed && $np -gt $st ]]; then
    grep -q "factorization: distributed, once per stage on a" "$WORK/$tag.err" ||
      { cat "$WORK/$tag.err"; fail "$tag: the distributed factorization was not used"; }
  fi
  if [[ $GPTQD_TEST_FAMILY == moe && $np -gt $st ]]; then
    want="routed experts sharded over each stage's $((np / st)) replicas"
    [[ $variant == replicated ]] && want="routed experts replicated (moe.experts)"
    [[ $variant == activations ]] && want="activations for the experts' gate_proj/up_proj inputs"
    [[ $variant == hessians ]] && want="Hessians for the experts' gate_proj/up_proj inputs"
    grep -q "$want" "$WORK/$tag.err" || { cat "$WORK/$tag.err"; fail "$tag: not '$want'"; }
  fi
  rows=$(grep -cE "^ +[0-3] +(self_attention|self_attn|mlp)" "$WORK/$tag.out")
  [[ $rows -eq $((8 * LAYERS_PER_BLOCK)) ]] || { cat "$WORK/$tag.out"; fail "$tag: $rows report rows, expected 4 blocks x $LAYERS_PER_BLOCK layers x 2 runs"; }
done

/usr/bin/python3 - "$WORK" "$FACTORIZATION" "${LAYOUTS[@]}" <<'PY' || fail "checkpoints differ across layouts"
import sys, h5py, numpy as np

work, factorization, layouts = sys.argv[1], sys.argv[2], sys.argv[3:]
LAYER_LOSS_TOL = 1e-2  # a flipped tie cascading along a row (header)
ARRAYS = ("codes", "scales", "zeros", "g_idx", "perm", "bias")

def load(tag):
    f = h5py.File(f"{work}/{tag.replace(':', 'x')}.h5", "r")
    layers, stats = {}, {}
    for rn, run in f["runs"].items():
        assert (run["complete"][()] == 1).all(), (tag, rn, run["complete"][()])
        stats[rn] = run["stats"][()]
        for b, blk in run["blocks"].items():
            for l, g in blk.items():
                layers[(rn, int(b), l)] = {k: g[k][()] for k in ARRAYS}
    return layers, stats

res = {t: load(t) for t in layouts}
replicas = {t: int(t.split(":")[0]) // int(t.split(":")[1]) for t in layouts}

# Routed experts replicated against sharded with partial Hessians over the same 2 replicas: the
# same codes, scales, zeros, g_idx, perm and bias bit for bit (the stats are summed over slices
# in one and computed whole in the other: they differ in their last bits).
variants = [t for t in layouts if t.count(":") == 3]
if "2:1:device:replicated" in variants:
    a, b = res["2:1:device:hessians"][0], res["2:1:device:replicated"][0]
    assert a.keys() == b.keys()
    for k in a:
        for n in ARRAYS:
            assert np.array_equal(a[k][n], b[k][n]), f"experts replicated vs sharded: {k} {n} differ"
    print("2:1:device:replicated == 2:1:device:hessians bit for bit")
layouts = [t for t in layouts if t not in variants]

# Same replica count: identical files (stats except the seconds column).
first = {}
for t in layouts:
    r = replicas[t]
    if r not in first:
        first[r] = t
        continue
    (a, sa), (b, sb) = res[first[r]], res[t]
    assert a.keys() == b.keys()
    for k in a:
        for n in ARRAYS:
            assert np.array_equal(a[k][n], b[k][n]), f"{t} vs {first[r]}: {k} {n} differ"
    for rn in sa:
        cols = [0, 1, 2, 4]
        assert np.array_equal(sa[rn][:, :, cols], sb[rn][:, :, cols]), f"{t} vs {first[r]}: {rn} stats differ"
    print(f"{t} == {first[r]} bit for bit ({r} replica(s))")

# Other replica counts against one rank.
ref, ref_stats = res["1:1"]
for r, t in sorted(first.items()) + [(replicas[t], t) for t in variants]:
    if r == 1:
        continue
    x, x_stats = res[t]
    same = sum(int((ref[k]["codes"] == x[k]["codes"]).sum()) for k in ref)
    total = sum(ref[k]["codes"].size for k in ref)
    worst = max(float(np.max(np.abs(x_stats[rn][:, :, 0] / ref_stats[rn][:, :, 0] - 1))) for rn in ref_stats)
    job = abs(sum(float(x_stats[rn][:, :, 0].sum()) for rn in ref_stats) /
              sum(float(ref_stats[rn][:, :, 0].sum()) for rn in ref_stats) - 1)
    print(f"{r} replicas ({t}) vs 1 rank: {same}/{total} codes identical ({same / total:.5%}), "
          f"largest per-layer GPTQ loss difference {worst:.2e}, total loss {job:.2e}")
    # Every replica's slice of scales and zeros reached the file (a lost or misplaced slice
    # would show as fill values or another row's numbers, far beyond rounding).
    close = sum(int(np.isclose(ref[k][n], x[k][n], rtol=1e-3, atol=0).sum()) for k in ref for n in ("scales", "zeros"))
    params = sum(ref[k][n].size for k in ref for n in ("scales", "zeros"))
    assert close >= 0.999 * params, f"{t}: only {close}/{params} scales and zeros agree with 1 rank"
    assert same >= 0.999 * total, f"{t}: only {same}/{total} codes agree with 1 rank"
    assert worst <= LAYER_LOSS_TOL, f"{t}: a layer's loss differs by {worst:.2e} from 1 rank"
    assert job <= 1e-4, f"{t}: the total loss differs by {job:.2e} from 1 rank"
PY
echo "layouts: ok"
