#!/usr/bin/env bash
# The checkpoint verifies what it reads (issue 14 item 4): damage that stays inside every range
# (a 4-bit code changed to another 4-bit code, a scale nudged, a run's `bits` attribute
# rewritten) is found by the per-layer checksums: `inspect --verify` names run, block and layer
# and exits 1, export and eval refuse, and a resumed job quantizes the damaged blocks again,
# giving back exactly the undamaged checkpoint. Controls: the digest comparison fails on the
# damaged file, and the damage really is within range (range checks alone pass it, in a true
# format 1 file). Issue 20 item 5: a file whose format_version was lowered to 1 while it holds
# checksums is refused (inspect, export, resume); four damaged blocks are all found and repaired
# by one resume on two ranks.
source "$(dirname "$0")/lib.bash"

make_model "$WORK/m"
make_tokens "$WORK/tokens.safetensors" 4000
CK=$WORK/ck.h5
write_config "$WORK/job.yaml" "$WORK/m" "$CK"
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" >/dev/null 2>"$WORK/q1.err" ||
  { cat "$WORK/q1.err"; fail "first quantize failed"; }
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$CK" >"$WORK/digest.json"
"$BIN" inspect "$CK" --verify >"$WORK/v0.out" || { cat "$WORK/v0.out"; fail "verify of a sound file failed"; }
grep -q "2 complete blocks, 8 layers, checksums and ranges: OK" "$WORK/v0.out" ||
  { cat "$WORK/v0.out"; fail "verify report of a sound file"; }
echo "ok   sound file verifies: $(cat "$WORK/v0.out")"

# Damage inside every range: a code of block 0's first layer moved to another 4-bit value, a
# scale of block 1's last layer scaled by 1.001.
cp "$CK" "$WORK/pristine.h5"
/usr/bin/python3 - "$CK" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    run = f["runs"][list(f["runs"])[0]]
    codes = run["blocks/0/self_attention.query_key_value/codes"]
    v = int(codes[5, 7]); codes[5, 7] = (v + 1) % 16
    scales = run["blocks/1/mlp.dense_4h_to_h/scales"]
    scales[0, 3] = scales[0, 3] * 1.001
PY
set +e
"$BIN" inspect "$CK" --verify >"$WORK/v1.out" 2>&1
rc=$?
set -e
[[ $rc -eq 1 ]] || { cat "$WORK/v1.out"; fail "verify of a damaged file: exit $rc, expected 1"; }
grep -q "block 0 self_attention.query_key_value: row 5's checksum does not match" "$WORK/v1.out" ||
  { cat "$WORK/v1.out"; fail "the changed code is not named"; }
grep -q "block 1 mlp.dense_4h_to_h: row 3's checksum does not match" "$WORK/v1.out" ||
  { cat "$WORK/v1.out"; fail "the changed scale is not named"; }
grep -q "^DAMAGED .*: 2 of 2 complete blocks" "$WORK/v1.out" || { cat "$WORK/v1.out"; fail "summary"; }
echo "ok   damage found: $(grep -c checksum "$WORK/v1.out") lines, exit 1"

# format_version written down to 1 while the checksums are there (issue 20 item 5: that turned
# checksum checking off): refused by inspect, export and a resume, one line naming the file.
/usr/bin/python3 - "$CK" "$WORK/format1.h5" <<'PY'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    f.attrs["format_version"] = 1
PY
lowered="checkpoint $WORK/format1.h5 has format_version 1 but holds checksum datasets \(first: /runs/w4g32/blocks/0/self_attention.query_key_value/checksum\), which only format_version 2 and later write"
write_config "$WORK/job1.yaml" "$WORK/m" "$WORK/format1.h5"
expect_lowered() {  # WHAT COMMAND...: exit 1 and one error line saying so
  local what=$1 rc
  shift
  set +e
  "$@" >"$WORK/v2.out" 2>&1
  rc=$?
  set -e
  [[ $rc -eq 1 && $(grep -c "error:" "$WORK/v2.out") -eq 1 ]] &&
    grep "error:" "$WORK/v2.out" | grep -qE "$lowered" ||
    { cat "$WORK/v2.out"; fail "lowered format_version, $what: exit $rc or its error line"; }
}
expect_lowered inspect "$BIN" inspect "$WORK/format1.h5" --verify
expect_lowered export "$BIN" export "$WORK/format1.h5" --out "$WORK/exp1"
expect_lowered resume "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job1.yaml"
echo "ok   format_version lowered to 1 with checksums: refused by inspect, export and a resume"

# Control: the damage is within range, so only the checksum can see it: as a true format 1 file
# (its checksum datasets deleted too) it passes every range check.
/usr/bin/python3 - "$WORK/format1.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    sums = []
    f.visit(lambda name: sums.append(name) if name.endswith("/checksum") else None)
    for name in sums:
        del f[name]
PY
"$BIN" inspect "$WORK/format1.h5" --verify >"$WORK/v2.out" ||
  { cat "$WORK/v2.out"; fail "control: the damage is not within range"; }
grep -q "ranges only" "$WORK/v2.out" || { cat "$WORK/v2.out"; fail "control: format 1 report"; }
echo "ok   control: range checks alone pass the damage"

# Control: the digest comparison used below sees the damage.
if /usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$CK" "$WORK/digest.json" 2>/dev/null; then
  fail "control: the digest does not see the damage"
fi

# Every reader refuses: export (one line, exit 1).
set +e
"$BIN" export "$CK" --out "$WORK/exp" >"$WORK/e.out" 2>"$WORK/e.err"
rc=$?
set -e
[[ $rc -eq 1 ]] || { cat "$WORK/e.err"; fail "export of a damaged file: exit $rc"; }
grep -q "checksum does not match.*the checkpoint is damaged" "$WORK/e.err" ||
  { cat "$WORK/e.err"; fail "export's error line"; }
echo "ok   export refuses: $(grep error: "$WORK/e.err" | head -1 | cut -c1-160)"

# A resumed job re-quantizes the damaged blocks and ends with the undamaged checkpoint.
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" >/dev/null 2>"$WORK/q2.err" ||
  { cat "$WORK/q2.err"; fail "resume failed"; }
[[ $(grep -c "will be quantized again" "$WORK/q2.err") -eq 2 ]] ||
  { cat "$WORK/q2.err"; fail "resume did not name the 2 damaged blocks"; }
grep -q "checkpoint verified: 2 complete blocks read back, 2 damaged" "$WORK/q2.err" ||
  { cat "$WORK/q2.err"; fail "resume's verification summary"; }
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$CK" "$WORK/digest.json" ||
  fail "the re-quantized blocks differ from the original ones"
"$BIN" inspect "$CK" --verify >/dev/null || fail "verify after resume"
echo "ok   resume re-quantized both blocks, digest equal to the original"

# A run attribute rewritten (bits 4 -> 3, which every range still allows) no longer matches the
# checksums written under the old settings.
/usr/bin/python3 - "$WORK/pristine.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    run = f["runs"][list(f["runs"])[0]]
    run.attrs["bits"] = run.attrs["bits"] - 1
    for b in run["blocks"].values():
        for layer in b.values():
            layer["codes"][...] = layer["codes"][()] % 8  # keep every code a 3-bit one
PY
set +e
"$BIN" inspect "$WORK/pristine.h5" --verify >"$WORK/v3.out" 2>&1
rc=$?
set -e
[[ $rc -eq 1 ]] && grep -q "g_idx, perm and stats with the run's settings" "$WORK/v3.out" ||
  { cat "$WORK/v3.out"; fail "a rewritten bits attribute: exit $rc"; }
echo "ok   rewritten bits attribute found"

# Four damaged blocks, read back by two ranks in one resume (issue 20 item 5: a rank that read a
# run's completion map after the other had cleared a damaged block's mark in it shifted its share
# and skipped a block; the resume then failed on it and a second one repaired it). Two runs of 4
# blocks, shared round-robin: rank 1's blocks 1 and 3 of the first run are damaged (their marks
# take rank 1 longer to clear), then blocks 0 and 3 of the second, so rank 0 clears block 0 there
# while rank 1 has yet to read that map. Before the fix half of the resumes missed block 3 (3 of 4
# quantized again, then "run w3g32 block 3 ... checksum does not match"); three from the same
# damaged file must each find all four and end with the undamaged checkpoint.
make_model "$WORK/m4" --layers 4
write_config "$WORK/job4.yaml" "$WORK/m4" "$WORK/ck4.h5" "sweep:
  bits: [4, 3]"
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job4.yaml" >/dev/null 2>"$WORK/q4.err" ||
  { cat "$WORK/q4.err"; fail "4-block quantize failed"; }
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/ck4.h5" >"$WORK/digest4.json"
/usr/bin/python3 - "$WORK/ck4.h5" "$WORK/damaged4.h5" <<'PY'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    runs = list(f.attrs["runs"])
    for run, blocks in ((runs[0], (1, 3)), (runs[1], (0, 3))):
        for b in blocks:
            scales = f["runs"][run][f"blocks/{b}/mlp.dense_4h_to_h/scales"]
            scales[0, b] = scales[0, b] * 1.001
PY
# Control: all four are damaged, and the digest comparison sees it.
set +e
"$BIN" inspect "$WORK/damaged4.h5" --verify >"$WORK/v4.out" 2>&1
rc=$?
set -e
[[ $rc -eq 1 ]] && grep -q "^DAMAGED .*: 4 of 8 complete blocks" "$WORK/v4.out" ||
  { cat "$WORK/v4.out"; fail "control: the 4 blocks are not all damaged"; }
if /usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/damaged4.h5" "$WORK/digest4.json" \
  2>/dev/null; then
  fail "control: the digest does not see the damage of the 4 blocks"
fi
for attempt in 1 2 3; do
  cp "$WORK/damaged4.h5" "$WORK/ck4.h5"
  "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job4.yaml" >/dev/null 2>"$WORK/q4b.err" ||
    { grep error: "$WORK/q4b.err"; fail "resume $attempt of 4 damaged blocks failed"; }
  [[ $(grep -c "will be quantized again" "$WORK/q4b.err") -eq 4 ]] &&
    grep -q "checkpoint verified: 8 complete blocks read back, 4 damaged" "$WORK/q4b.err" ||
    { grep -E "quantized again|verified" "$WORK/q4b.err"; fail "resume $attempt did not find the 4"; }
  /usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/ck4.h5" "$WORK/digest4.json" >/dev/null ||
    fail "after resume $attempt the 4 blocks differ from the undamaged ones"
done
echo "ok   one resume re-quantized all 4 damaged blocks (3 times), digest equal to the undamaged run"
