#!/usr/bin/env bash
# parallel.precision fast against exact on the quick start's model (models/tiny-bloom, the
# quick start job at 4 and 3 bits, 2 ranks, CPU): the fast path's GPTQ perplexity is within
# 0.1% of the exact path's at 4 bits and 0.5% at 3 bits, and its codes agree with the exact
# checkpoint's above the floor measured in docs/numerics.md. The eval text is the held-out
# text's first 1200 lines (a quarter of it) to keep the test to a few minutes.
# The bars are what the BLAS kernel's summation order itself moves (both runs are made on the
# same machine, so the kernel is the same for both, but which one it is decides where GPTQ's
# rounding ties fall). Measured with the six OpenBLAS 0.3.21 kernels an AVX-512 Xeon runs,
# fast vs exact GPTQ perplexity: w4g128 -0.039% (Cooperlake), +0.011% (Haswell, Zen), -0.029%
# (SkylakeX), +0.026% (Sandybridge), +0.044% (Prescott, what OpenBLAS alone picks on a CPU it
# does not know; gptqd now takes the CPU's widest at start-up unless OPENBLAS_CORETYPE is set); w3g128 -0.007%, +0.014%, +0.119%, +0.106%, +0.325%.
# Exact alone moves by 0.053% (w4g128) and 0.162% (w3g128) from kernel to kernel.
# Controls: the two checkpoints differ (the setting reaches the backend), fast refuses to
# resume the exact checkpoint (the fingerprint carries the precision), each bar fails on a
# difference that matters (w4g128: RTN against GPTQ, 0.19-0.24% on every kernel; w3g128: RTN
# against the original model, 0.89%: at 3 bits GPTQ's lead over RTN, 0.38-0.55%, is itself
# within what the kernel moves on this small model), and the agreement floor fails on a
# checkpoint calibrated on other windows (seed 1).
source "$(dirname "$0")/lib.bash"

# Measured (docs/numerics.md, --threads 1): fast vs exact 0.812, exact vs exact calibrated on
# other windows 0.724 (the control below), exact --threads 2 vs 1 0.912.
MIN_AGREEMENT=${MIN_AGREEMENT:-0.78}

head -n 1200 "$SRC/data/austen-eval.txt" >"$WORK/eval.txt"
# job FILE PRECISION CHECKPOINT [SEED]
job() {
  sed -e "s#checkpoint: out/tiny-bloom.h5#checkpoint: $3#" \
    -e "s#  device: auto .*#  device: cpu\n  precision: $2#" \
    -e "s#  seed: 0#  seed: ${4:-0}#" \
    -e "s#text: data/austen-eval.txt#text: $WORK/eval.txt#" "$SRC/configs/tiny-bloom.yaml" >"$1"
}
job "$WORK/exact.yaml" exact "$WORK/exact.h5"
job "$WORK/fast.yaml" fast "$WORK/fast.h5"
job "$WORK/seed1.yaml" exact "$WORK/seed1.h5" 1
grep -q "precision: fast" "$WORK/fast.yaml" || fail "the job was not rewritten"

quantize() {
  (cd "$SRC" && timeout 600 "${MPIRUN[@]}" -np 2 "$BIN" quantize "$1" --threads 1) \
    >"$WORK/$2.out" 2>"$WORK/$2.err" || { cat "$WORK/$2.err"; fail "quantize $2 failed"; }
}
evaluate() {
  (cd "$SRC" && timeout 900 "${MPIRUN[@]}" -np 2 "$BIN" eval "$1" --threads 1) \
    >"$WORK/$2.eval" 2>"$WORK/$2.eval.err" || { cat "$WORK/$2.eval.err"; fail "eval $2 failed"; }
}
quantize "$WORK/exact.yaml" exact
quantize "$WORK/fast.yaml" fast
grep -q "precision exact for the forward GEMMs" "$WORK/exact.err" || fail "exact: no precision line"
grep -q "precision fast for the forward GEMMs" "$WORK/fast.err" || fail "fast: no precision line"

# Control: the fast job does not resume the exact checkpoint.
job "$WORK/fast_on_exact.yaml" fast "$WORK/exact.h5"
if (cd "$SRC" && timeout 300 "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/fast_on_exact.yaml" \
  --threads 1) >"$WORK/resume.out" 2>"$WORK/resume.err"; then
  fail "control: fast resumed the exact checkpoint"
fi

read -r _ _ _ agreement < <(/usr/bin/python3 "$SRC/tests/cli/codes_agreement.py" "$WORK/exact.h5" \
  "$WORK/fast.h5" | grep "^all ")
echo "codes agreement fast vs exact: $agreement (floor $MIN_AGREEMENT)"
# within LO HI X: LO <= X < HI
within() { awk -v lo="$1" -v hi="$2" -v x="$3" 'BEGIN { exit !(x >= lo && x < hi) }'; }
within "$MIN_AGREEMENT" 1 "$agreement" || fail "codes agreement $agreement not in [$MIN_AGREEMENT, 1)"

evaluate "$WORK/exact.yaml" exact
evaluate "$WORK/fast.yaml" fast
# table_ppl FILE RUN METHOD: the perplexity column of that row of eval's table
table_ppl() { awk -v run="$2" -v method="$3" '$1 == run && $4 == method { print $5 }' "$1"; }
# rel_close A B BAR: |A - B| / B < BAR
rel_close() { awk -v a="$1" -v b="$2" -v bar="$3" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; exit !(d < bar) }'; }
declare -A BAR=([w4g128]=0.001 [w3g128]=0.005)
for run in w4g128 w3g128; do
  e=$(table_ppl "$WORK/exact.eval" $run GPTQ) f=$(table_ppl "$WORK/fast.eval" $run GPTQ)
  [[ -n $e && -n $f ]] || { cat "$WORK/exact.eval" "$WORK/fast.eval"; fail "no GPTQ row for $run"; }
  echo "$run GPTQ perplexity: exact $e, fast $f (bar ${BAR[$run]})"
  rel_close "$f" "$e" "${BAR[$run]}" || fail "$run: fast GPTQ perplexity $f is not within ${BAR[$run]} of exact $e"
done
# Controls: each bar tells apart two models that differ in what matters.
r=$(table_ppl "$WORK/exact.eval" w4g128 RTN) e=$(table_ppl "$WORK/exact.eval" w4g128 GPTQ)
if rel_close "$r" "$e" "${BAR[w4g128]}"; then fail "control: RTN $r passed as within ${BAR[w4g128]} of GPTQ $e"; fi
r=$(table_ppl "$WORK/exact.eval" w3g128 RTN) o=$(table_ppl "$WORK/exact.eval" - original)
[[ -n $r && -n $o ]] || { cat "$WORK/exact.eval"; fail "no RTN or original row"; }
if rel_close "$r" "$o" "${BAR[w3g128]}"; then fail "control: 3-bit RTN $r passed as within ${BAR[w3g128]} of the original $o"; fi

# Control: the agreement floor fails on a checkpoint calibrated on other windows.
quantize "$WORK/seed1.yaml" seed1
read -r _ _ _ other < <(/usr/bin/python3 "$SRC/tests/cli/codes_agreement.py" "$WORK/exact.h5" \
  "$WORK/seed1.h5" | grep "^all ")
echo "codes agreement seed 1 vs seed 0 (control): $other"
if within "$MIN_AGREEMENT" 1 "$other"; then
  fail "control: another calibration draw agrees $other, above the floor $MIN_AGREEMENT"
fi
echo "precision fast vs exact: ok"
