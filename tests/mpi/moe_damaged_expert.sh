#!/usr/bin/env bash
# A damaged expert in a mixture-of-experts checkpoint (issue 19 item 8): on the 4-block
# Qwen2-MoE of distributed_layouts_moe, quantized by 2 replicas of one stage, one code of routed
# expert 1's down_proj in block 2 is moved to another 4-bit value. `inspect --verify` names that
# expert layer and exits 1; a resumed job on 2 replicas re-quantizes block 2 alone and gives back
# exactly the undamaged checkpoint (codes, scales, zeros, g_idx, perm, bias, stats and the
# experts' token counts). Control: the digest comparison fails on the damaged file.
GPTQD_TEST_FAMILY=moe
source "$(dirname "$0")/../cli/lib.bash"
make_family_model "$WORK/m"
make_tokens "$WORK/tokens.safetensors" 4000
CK=$WORK/ck.h5
write_config "$WORK/job.yaml" "$WORK/m" "$CK" "parallel:
  stages: 1"
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" >/dev/null 2>"$WORK/q1.err" ||
  { cat "$WORK/q1.err"; fail "first quantize failed"; }
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$CK" >"$WORK/digest.json"
/usr/bin/python3 -c "import h5py,sys,numpy; numpy.save(sys.argv[2], h5py.File(sys.argv[1],'r')['runs/w4g32/tokens'][()])" \
  "$CK" "$WORK/tokens.npy"
"$BIN" inspect "$CK" --verify >"$WORK/v0.out" || { cat "$WORK/v0.out"; fail "verify of a sound file failed"; }
echo "ok   sound file verifies: $(tail -1 "$WORK/v0.out")"

LAYER=mlp.experts.1.down_proj
/usr/bin/python3 - "$CK" "$LAYER" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    codes = f[f"runs/w4g32/blocks/2/{sys.argv[2]}/codes"]
    v = int(codes[3, 5]); codes[3, 5] = (v + 1) % 16
PY
set +e
"$BIN" inspect "$CK" --verify >"$WORK/v1.out" 2>&1
rc=$?
set -e
[[ $rc -eq 1 ]] || { cat "$WORK/v1.out"; fail "verify of a damaged expert: exit $rc, expected 1"; }
grep -q "block 2 $LAYER: row 3's checksum does not match" "$WORK/v1.out" ||
  { cat "$WORK/v1.out"; fail "the damaged expert layer is not named"; }
echo "ok   damage found: $(grep -m1 checksum "$WORK/v1.out" | cut -c1-120)"
if /usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$CK" "$WORK/digest.json" 2>/dev/null; then
  fail "control: the digest does not see the damage"
fi

"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" >/dev/null 2>"$WORK/q2.err" ||
  { cat "$WORK/q2.err"; fail "resume failed"; }
[[ $(grep -c "will be quantized again" "$WORK/q2.err") -eq 1 ]] ||
  { cat "$WORK/q2.err"; fail "resume did not name the one damaged block"; }
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$CK" "$WORK/digest.json" ||
  fail "the re-quantized block differs from the original one"
/usr/bin/python3 -c "import h5py,sys,numpy; assert (numpy.load(sys.argv[2]) == h5py.File(sys.argv[1],'r')['runs/w4g32/tokens'][()]).all()" \
  "$CK" "$WORK/tokens.npy" || fail "the experts' token counts differ after the resume"
"$BIN" inspect "$CK" --verify >/dev/null || fail "verify after resume"
echo "ok   resume re-quantized block 2 on 2 replicas: digest and token counts equal the original"
