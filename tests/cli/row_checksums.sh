#!/usr/bin/env bash
# Issue 21 item 5: a checkpoint's row checksums are standard xxHash values that any tool
# recomputes from the file (XXH3_64bits in format_version 3, XXH64 in format 2). A 2-rank quantize
# (two runs) writes a format 3 checkpoint; the python example of docs/checkpoint-format.md (run
# from the docs by ckpt_row_checksums.py, with python's xxhash: the pasted example itself, then
# its row_checksum on every row of every complete block) finds every value equal; so does it for
# the format 2 fixture written by the gptqd of db53eaa (its hand-written XXH64). Controls: one
# flipped code fails the python check on that row and `inspect --verify` names the same row; a
# flipped code in the example's own layer fails the pasted example.
source "$(dirname "$0")/lib.bash"

/usr/bin/python3 -c "import h5py, xxhash" 2>/dev/null || {
  echo "SKIP: no /usr/bin/python3 with h5py and xxhash (scripts/install-deps.sh: python3-xxhash)"
  exit 77
}
CHECK=(/usr/bin/python3 "$SRC/tests/cli/ckpt_row_checksums.py" "$SRC/docs/checkpoint-format.md")

make_model "$WORK/m"
make_tokens "$WORK/tokens.safetensors" 4000
CK=$WORK/ck.h5
write_config "$WORK/job.yaml" "$WORK/m" "$CK" $'  act_order: true\nsweep:\n  bits: [3, 4]'
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" >/dev/null 2>"$WORK/q.err" ||
  { cat "$WORK/q.err"; fail "quantize failed"; }

# 2 runs x 2 blocks x (192 + 64 + 256 + 64) rows; the example's layer has 64.
"${CHECK[@]}" "$CK" >"$WORK/py.out" || { cat "$WORK/py.out"; fail "python xxhash disagrees"; }
printf 'example: 64 of 64 rows match\n2304 rows of 16 layers match (format_version 3)\n' |
  diff - "$WORK/py.out" || fail "python check's output"
echo "ok   python xxhash (XXH3) recomputes every row checksum: $(tr '\n' ' ' <"$WORK/py.out")"

# The format 2 fixture (XXH64): 2 runs x 2 blocks x (96 + 32 + 128 + 32) rows.
"${CHECK[@]}" "$SRC/tests/fixtures/checkpoint/format2.h5" >"$WORK/py2.out" ||
  { cat "$WORK/py2.out"; fail "python xxhash disagrees with the format 2 fixture"; }
printf 'example: 32 of 32 rows match\n1152 rows of 16 layers match (format_version 2)\n' |
  diff - "$WORK/py2.out" || fail "python check's output on the format 2 fixture"
echo "ok   the format 2 fixture's checksums are XXH64: $(tr '\n' ' ' <"$WORK/py2.out")"

# Control: one byte of codes flipped (a 3- or 4-bit code stays in range with its low bit flipped).
flip() {
  /usr/bin/python3 - "$CK" "$1" "$2" "$3" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    codes = f[sys.argv[2]]
    r, c = int(sys.argv[3]), int(sys.argv[4])
    codes[r, c] = int(codes[r, c]) ^ 1
PY
}
flip runs/w4g32-act/blocks/1/mlp.dense_h_to_4h/codes 37 11
set +e
"${CHECK[@]}" "$CK" >"$WORK/py3.out" 2>&1
rc=$?
"$BIN" inspect "$CK" --verify >"$WORK/v.out" 2>&1
vrc=$?
set -e
[[ $rc -eq 1 ]] || { cat "$WORK/py3.out"; fail "python check of a flipped code: exit $rc, expected 1"; }
grep -q "^w4g32-act/1/mlp.dense_h_to_4h row 37: stored " "$WORK/py3.out" ||
  { cat "$WORK/py3.out"; fail "python check does not name the flipped row"; }
[[ $vrc -eq 1 ]] && grep -q "block 1 mlp.dense_h_to_4h: row 37's checksum does not match" "$WORK/v.out" ||
  { cat "$WORK/v.out"; fail "inspect --verify of the flipped code: exit $vrc"; }
echo "ok   control: one flipped code fails the python check ($(tail -1 "$WORK/py3.out")) and --verify"

# Control: a flipped code in the pasted example's own layer (first run, block 0, row 5).
flip runs/w3g32-act/blocks/0/self_attention.dense/codes 5 0
set +e
"${CHECK[@]}" "$CK" >"$WORK/py4.out" 2>&1
rc=$?
set -e
[[ $rc -eq 1 ]] && grep -qx "example on w3g32-act: 63 of 64 rows match (first bad: 5)" "$WORK/py4.out" ||
  { cat "$WORK/py4.out"; fail "the pasted example on a flipped code: exit $rc"; }
echo "ok   control: the pasted example finds it ($(cat "$WORK/py4.out"))"
