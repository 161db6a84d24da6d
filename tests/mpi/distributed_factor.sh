#!/usr/bin/env bash
# parallel.factorization: distributed, the solver alone (tests/mpi/distributed_factor_check.cpp):
# ScaLAPACK's U on 1 x 2, 1 x 3 and 2 x 2 grids, with a small block (many blocks per process)
# and the default one, against the CPU backend's LAPACK U; an indefinite matrix refused on every
# rank without a hang; GPTQ's damping retries and codes the same either way.
source "$(dirname "$0")/../cli/lib.bash"
EXE=$GPTQD_BINARY_DIR/tests/distributed_factor_check

for np in 2 3 4; do
  for block in 16 256; do
    log="$WORK/np$np-b$block"
    timeout 120 "${MPIRUN[@]}" -np "$np" "$EXE" "$block" >"$log.out" 2>"$log.err" ||
      { cat "$log.out" "$log.err"; fail "$np ranks, block $block"; }
    grep -q "distributed_factor_check: ok" "$log.out" || { cat "$log.out" "$log.err"; fail "$np ranks, block $block: no ok line"; }
    echo "$np ranks, block $block: $(head -1 "$log.out"); $(grep gptq "$log.out")"
  done
done
echo "distributed_factor: ok"
