#!/usr/bin/env bash
# calibration.inputs: original (issue 21 item 2, the calibration mode concurrent stages need):
# every block is calibrated on the unquantized model's inputs. On the quick-start model (4
# blocks), w4g128, 16 sequences of 64 tokens:
#  - block 0 (input: the embedding in both modes) is bit-identical to the default mode's, and
#    every later block differs (the mode does something, and only where it should);
#  - a resume whose block 2 was damaged re-quantizes it from inputs the resumed path forwards
#    through the original blocks 0 and 1, and ends bit-identical to the uninterrupted run: the
#    quantizing path's output and the resumed path's agree, so each block's input is the
#    original model's (a final pass through the quantized weights would differ here);
#  - 2 stages give the same checkpoint as 1 rank;
#  - a checkpoint of one mode does not resume in the other (the fingerprint differs);
#  - quantized_in_stage (below) mixes the two by stage.
source "$(dirname "$0")/lib.bash"
M=$SRC/models/tiny-bloom
write_job() {  # FILE INPUTS CHECKPOINT STAGES
  cat >"$1" <<YAML
model:
  path: $M
calibration:
  text: $SRC/data/austen-train.txt
  nsamples: 16
  seqlen: 64
  inputs: $2
quant:
  bits: 4
  group_size: 128
parallel:
  stages: $4
  device: cpu
output:
  checkpoint: $3
YAML
}
quantize() {  # NAME RANKS JOB
  "${MPIRUN[@]}" -np "$2" "$BIN" quantize "$3" --threads 1 >"$WORK/$1.out" 2>"$WORK/$1.err" ||
    { tail -20 "$WORK/$1.err"; fail "$1: quantize failed"; }
}
write_job "$WORK/q.yaml" quantized "$WORK/q.h5" 1
write_job "$WORK/o.yaml" original "$WORK/o.h5" 1
quantize q 1 "$WORK/q.yaml"
quantize o 1 "$WORK/o.yaml"
grep -q "calibration.inputs original: every block is calibrated on the unquantized model's inputs" \
  "$WORK/o.out" "$WORK/o.err" || fail "the job does not say it calibrates on the original inputs"

/usr/bin/python3 - "$WORK/q.h5" "$WORK/o.h5" <<'PY' || fail "block 0 equal, later blocks different: not so"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as q, h5py.File(sys.argv[2], "r") as o:
    rq, ro = q["runs/w4g128/blocks"], o["runs/w4g128/blocks"]
    for b in sorted(rq, key=int):
        same = [l for l in rq[b] if np.array_equal(rq[b][l]["codes"][()], ro[b][l]["codes"][()])]
        print(f"block {b}: {len(same)} of {len(rq[b])} layers with identical codes")
        if b == "0":
            assert len(same) == len(rq[b]), "block 0 differs between the modes"
        else:
            assert len(same) < len(rq[b]), f"block {b} is identical in both modes"
PY
echo "ok   block 0 identical in both modes, blocks 1-3 differ"

# Resume with block 2 damaged (one code moved): re-quantized, equal to the uninterrupted run.
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/o.h5" >"$WORK/o.json"
cp "$WORK/o.h5" "$WORK/r.h5"
/usr/bin/python3 - "$WORK/r.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    codes = f["runs/w4g128/blocks/2/self_attention.query_key_value/codes"]
    v = int(codes[3, 5]); codes[3, 5] = (v + 1) % 16
PY
write_job "$WORK/r.yaml" original "$WORK/r.h5" 1
quantize r 1 "$WORK/r.yaml"
grep -q "will be quantized again" "$WORK/r.err" "$WORK/r.out" || fail "the resume did not find block 2"
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/r.h5" "$WORK/o.json" ||
  fail "the resumed block 2 differs from the uninterrupted run's"
echo "ok   resume from the original blocks 0-1: block 2 re-quantized bit-identical"

# Control: the same resume in the default mode on the original-mode file is refused.
write_job "$WORK/x.yaml" quantized "$WORK/r.h5" 1
set +e
"${MPIRUN[@]}" -np 1 "$BIN" quantize "$WORK/x.yaml" --threads 1 >"$WORK/x.out" 2>"$WORK/x.err"
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "a quantized-inputs job resumed an original-inputs checkpoint"
grep -qi "fingerprint\|different job\|does not match" "$WORK/x.err" ||
  { cat "$WORK/x.err"; fail "the refusal does not say why"; }
echo "ok   the other mode does not resume it: $(grep -i error "$WORK/x.err" | head -1 | cut -c1-150)"

# 2 stages: the same checkpoint as 1 rank.
write_job "$WORK/s.yaml" original "$WORK/s.h5" 2
quantize s 2 "$WORK/s.yaml"
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/s.h5" "$WORK/o.json" ||
  fail "2 stages differ from 1 rank in original mode"
echo "ok   2 stages equal 1 rank"

# quantized_in_stage (the hybrid: original inputs across stages, quantized within a stage).
#  - on 1 stage it is the default mode: the same codes as q;
#  - on 2 stages (stage 1 from block F): the blocks before F equal q's (quantized inputs from the
#    embedding on), block F equals o's (the original model's input), and a block after F, if
#    any, differs from both;
#  - its checkpoint does not resume on another stage split (the split is in its fingerprint).
write_job "$WORK/h1.yaml" quantized_in_stage "$WORK/h1.h5" 1
quantize h1 1 "$WORK/h1.yaml"
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/q.h5" >"$WORK/q.json"
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/h1.h5" "$WORK/q.json" ||
  fail "quantized_in_stage on one stage differs from the default mode"
echo "ok   quantized_in_stage on 1 stage equals the default mode"
write_job "$WORK/h2.yaml" quantized_in_stage "$WORK/h2.h5" 2
quantize h2 2 "$WORK/h2.yaml"
F=$(grep -oE "stage 1 blocks \[[0-9]+" "$WORK/h2.err" | head -1 | grep -oE "[0-9]+$")
[[ -n $F ]] || { cat "$WORK/h2.err"; fail "the 2-stage plan line is missing"; }
/usr/bin/python3 - "$WORK/q.h5" "$WORK/o.h5" "$WORK/h2.h5" "$F" <<'PY' || fail "quantized_in_stage on 2 stages is not the mix it should be"
import sys, h5py, numpy as np
q, o, h = (h5py.File(p, "r")["runs/w4g128/blocks"] for p in sys.argv[1:4])
first = int(sys.argv[4])
def same(a, b, blk):
    return all(np.array_equal(a[blk][l]["codes"][()], b[blk][l]["codes"][()]) for l in a[blk])
for b in sorted(h, key=int):
    n = int(b)
    sq, so = same(h, q, b), same(h, o, b)
    print(f"block {b}: equal to quantized {sq}, to original {so}")
    if n < first:
        assert sq, f"block {b} (stage 0) differs from the default mode"
    elif n == first:
        assert so, f"block {b} (stage 1's first) differs from the original mode"
    else:
        assert not sq and not so, f"block {b} equals a single mode"
PY
echo "ok   quantized_in_stage on 2 stages (stage 1 from block $F): stage 0 as the default mode, block $F as the original mode"
write_job "$WORK/h3.yaml" quantized_in_stage "$WORK/h2.h5" 1
expect_one_error h3 nonzero "made for a different job" \
  "${MPIRUN[@]}" -np 1 "$BIN" quantize "$WORK/h3.yaml" --threads 1
