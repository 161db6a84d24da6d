#!/usr/bin/env bash
# Three ranks write one checkpoint through parallel HDF5: each rank its own blocks, all of them
# row ranges of a shared block. Then h5py checks every attribute, dtype, shape and value
# (tests/mpi/ckpt_check.py recomputes the data from run, block, layer, index and writer rank),
# h5dump reads the file, and the inspect report shows the completeness.
set -uo pipefail

source "$(dirname "$0")/ckpt_env.bash"

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
[[ -x $WRITER ]] || fail "$WRITER is missing (build the ckpt_writer target)"
$PY -c 'import h5py' 2>/dev/null || skip "$PY cannot import h5py"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

timeout 120 "$MPIEXEC" -np 3 "$WRITER" parallel "$WORK/p.h5" || fail "3-rank write failed"
[[ -e $WORK/p.h5.creating ]] && fail "the temporary create file was left behind"

$PY "$CHECK" "$WORK/p.h5" 3 parallel || fail "h5py checks of the 3-rank checkpoint"
# The checker is not vacuous: with the wrong rank count the writer ranks in the data differ.
$PY "$CHECK" "$WORK/p.h5" 2 parallel >/dev/null && fail "checker accepted data of the wrong ranks"

if command -v h5dump >/dev/null; then
  h5dump -H "$WORK/p.h5" >/dev/null || fail "h5dump -H cannot read the checkpoint"
fi

timeout 60 "$MPIEXEC" -np 1 "$WRITER" inspect "$WORK/p.h5" >"$WORK/inspect.txt" || fail "inspect failed"
grep -q "run w4g4: bits 4, group_size 4, sym false, act_order true" "$WORK/inspect.txt" ||
  { cat "$WORK/inspect.txt"; fail "inspect does not show run w4g4's settings"; }
grep -q "blocks complete: 7/7$" "$WORK/inspect.txt" ||
  { cat "$WORK/inspect.txt"; fail "inspect does not show w4g4 complete"; }
grep -q "blocks complete: 4/7, missing: 3-5$" "$WORK/inspect.txt" ||
  { cat "$WORK/inspect.txt"; fail "inspect does not show w8gall's missing blocks"; }
rows=$(grep -cE "^ +[0-9]+ +(self_attention|mlp)\S* +[0-9]+x[0-9]+ " "$WORK/inspect.txt")
[[ $rows -eq 33 ]] || { cat "$WORK/inspect.txt"; fail "inspect shows $rows layer rows, want 33"; }
# The checksums of rows written by three ranks match the data as read back whole.
"$GPTQD_BIN" inspect "$WORK/p.h5" --verify >"$WORK/verify.txt" ||
  { cat "$WORK/verify.txt"; fail "inspect --verify of the 3-rank checkpoint"; }
grep -q "11 complete blocks, 33 layers, checksums and ranges: OK" "$WORK/verify.txt" ||
  { cat "$WORK/verify.txt"; fail "verify report"; }
echo "PASS: 3 ranks wrote one checkpoint; h5py, h5dump, inspect and inspect --verify agree"
