#!/usr/bin/env bash
# BLOOM checkpoints stay what they were before model families came in: the quick start's job
# (configs/tiny-bloom.yaml, 2 ranks, --threads 1) gives a checkpoint whose every quantized
# array and stats row has the sha256 recorded in tests/fixtures/bloom/quickstart_digest.json,
# made with gptqd at commit fb8f268 (the last BLOOM-only build) by
#   mpirun -np 2 build/gptqd quantize <tiny-bloom.yaml with another checkpoint path> --threads 1
#   python3 tests/cli/ckpt_digest.py <checkpoint> > tests/fixtures/bloom/quickstart_digest.json
# Control: one code changed in a copy of the file must be caught.
source "$(dirname "$0")/lib.bash"

sed "s#checkpoint: out/tiny-bloom.h5#checkpoint: $WORK/ck.h5#" "$SRC/configs/tiny-bloom.yaml" >"$WORK/job.yaml"
(cd "$SRC" && timeout 300 "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" --threads 1) \
  >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/err"; fail "the quick start job failed"; }
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/ck.h5" "$SRC/tests/fixtures/bloom/quickstart_digest.json" ||
  fail "the quick start's checkpoint differs from the BLOOM-only build's"

cp "$WORK/ck.h5" "$WORK/changed.h5"
/usr/bin/python3 - "$WORK/changed.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    d = f["runs/w4g128/blocks/2/mlp.dense_h_to_4h/codes"]
    d[5, 7] = (int(d[5, 7]) + 1) % 16
PY
if /usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/changed.h5" "$SRC/tests/fixtures/bloom/quickstart_digest.json" 2>"$WORK/control"; then
  fail "control: a changed code went unnoticed"
fi
grep -q "differs: w4g128/2/mlp.dense_h_to_4h/codes" "$WORK/control" || { cat "$WORK/control"; fail "control: wrong culprit"; }
echo "BLOOM checkpoint unchanged: ok"
