#!/usr/bin/env bash
# The NCCL transport between processes (tests/mpi/nccl_exchange.cpp): collectives and
# point-to-point transfers checked against Open MPI on the same data, the stage stream's two
# micro-batches in flight, a count mismatch refused on both sides, and a peer that never joins a
# collective, which must fail at its deadline instead of hanging. NCCL needs one GPU per rank: skipped (exit 77) without
# a CUDA build or with fewer than 2 GPUs.
source "$(dirname "$0")/../cli/lib.bash"
EXE=$GPTQD_BINARY_DIR/tests/nccl_exchange

grep -q "GPTQD_CUDA:BOOL=ON" "$GPTQD_BINARY_DIR/CMakeCache.txt" || { echo "skipped: built without CUDA"; exit 77; }
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
((gpus >= 2)) || { echo "skipped: $gpus GPU(s) visible, NCCL needs one per rank (2 or more)"; exit 77; }

np=$((gpus < 4 ? gpus : 4))
timeout 300 "${MPIRUN[@]}" -np "$np" "$EXE" check >"$WORK/check.out" 2>"$WORK/check.err" ||
  { cat "$WORK/check.err"; fail "collectives / transfers between $np ranks"; }
grep -q "nccl_exchange check: ok" "$WORK/check.out" || { cat "$WORK/check.out" "$WORK/check.err"; fail "no ok line"; }

start=$(date +%s)
timeout 120 "${MPIRUN[@]}" -np 2 "$EXE" dead-peer >"$WORK/dead.out" 2>"$WORK/dead.err" ||
  { cat "$WORK/dead.err"; fail "a silent peer was not handled by the deadline"; }
grep -q "allreduce without the silent peer failed after" "$WORK/dead.err" || { cat "$WORK/dead.err"; fail "no failure reported"; }
echo "nccl_exchange: $np ranks ok; silent peer: $(grep -o 'failed after [0-9.]* s' "$WORK/dead.err"), job $(($(date +%s) - start)) s"
