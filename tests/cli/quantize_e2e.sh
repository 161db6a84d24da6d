#!/usr/bin/env bash
# The real job end to end: 2 MPI ranks (the plan picks stages x replicas) quantize a small random BLOOM
# into one HDF5 checkpoint; h5dump and h5py read it; every layer's GPTQ error is below
# RTN's; inspect reports it complete; a rerun resumes every block and changes nothing.
source "$(dirname "$0")/lib.bash"

make_model "$WORK/model"
make_tokens "$WORK/tokens.safetensors" 4000
write_config "$WORK/job.yaml" "$WORK/model" "$WORK/out/ckpt.h5"

"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" >"$WORK/run1.out" 2>"$WORK/run1.err" ||
  { cat "$WORK/run1.err"; fail "quantize failed"; }
cat "$WORK/run1.out"
grep -q "run w4g32" "$WORK/run1.out" || fail "no report table"
[[ $(grep -cE "^ +[01] +(self_attention|mlp)" "$WORK/run1.out") -eq 8 ]] || fail "expected 8 layer rows"
grep -q "\[rank 1\]" "$WORK/run1.err" || grep -q "\[rank 0\]" "$WORK/run1.err" || fail "log lines lack the rank"

command -v h5dump >/dev/null && { h5dump -H "$WORK/out/ckpt.h5" >/dev/null || fail "h5dump cannot read the checkpoint"; }

/usr/bin/python3 - "$WORK/out/ckpt.h5" <<'PY' || fail "h5py checks"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
run = f["runs/w4g32"]
assert list(run["complete"][()]) == [1, 1], run["complete"][()]
stats = run["stats"][()]           # [blocks, layers, (gptq_loss, gptq_err, rtn_err, seconds, damp)]
assert stats.shape[:2] == (2, 4), stats.shape
assert (stats[:, :, 1] < stats[:, :, 2]).all(), stats[:, :, 1:3]
assert (stats[:, :, 1] > 0).all()
lay = run["blocks/1/mlp.dense_4h_to_h"]
codes, scales, zeros, g_idx = lay["codes"][()], lay["scales"][()], lay["zeros"][()], lay["g_idx"][()]
assert codes.shape == (64, 256) and codes.max() <= 15, (codes.shape, codes.max())
assert scales.shape == (8, 64) and zeros.shape == (8, 64)
deq = scales[g_idx, :].T * (codes.astype(np.float32) - zeros[g_idx, :].T)
assert np.isfinite(deq).all()
print("h5py: complete, GPTQ < RTN on all 8 layers, codes/scales/zeros consistent")
PY

"$BIN" inspect "$WORK/out/ckpt.h5" >"$WORK/inspect.out" || fail "inspect failed"
grep -qi "2/2" "$WORK/inspect.out" || { cat "$WORK/inspect.out"; fail "inspect does not report 2/2 blocks complete"; }

# Rerun: resumes, recomputes nothing, same file content.
sum1=$(/usr/bin/python3 -c "import h5py,hashlib,sys; f=h5py.File(sys.argv[1]); print(hashlib.sha1(f['runs/w4g32/blocks/1/mlp.dense_4h_to_h/codes'][()].tobytes()).hexdigest())" "$WORK/out/ckpt.h5")
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" >"$WORK/run2.out" 2>"$WORK/run2.err" ||
  { cat "$WORK/run2.err"; fail "rerun failed"; }
[[ $(grep -c "(resumed)" "$WORK/run2.out") -eq 8 ]] || { cat "$WORK/run2.out"; fail "rerun did not resume all 8 layers"; }
sum2=$(/usr/bin/python3 -c "import h5py,hashlib,sys; f=h5py.File(sys.argv[1]); print(hashlib.sha1(f['runs/w4g32/blocks/1/mlp.dense_4h_to_h/codes'][()].tobytes()).hexdigest())" "$WORK/out/ckpt.h5")
[[ $sum1 == "$sum2" ]] || fail "resume changed the checkpoint"

# A rerun with other settings is refused, and the file is left alone.
sed 's/bits: 4/bits: 3/' "$WORK/job.yaml" >"$WORK/job3.yaml"
if "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job3.yaml" >"$WORK/run3.out" 2>"$WORK/run3.err"; then
  fail "a rerun with different settings was accepted"
fi
grep -q "error:" "$WORK/run3.err" || fail "no error line for a mismatched resume"
echo "end-to-end: ok"
