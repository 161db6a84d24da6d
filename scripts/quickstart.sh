#!/usr/bin/env bash
# Quick start: installs what is missing, builds gptqd, quantizes the small BLOOM that ships in
# models/tiny-bloom on 2 MPI ranks (CPU) at 4 and 3 bits (group size 128), printing per-layer
# errors, then evaluates perplexity on the held-out text: original, RTN and GPTQ of each run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh --target gptqd
mpi_flags=(-np 2 --oversubscribe)
if [[ $(id -u) -eq 0 ]]; then mpi_flags+=(--allow-run-as-root); fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none   # containers often forbid CMA
set -x
mpirun "${mpi_flags[@]}" build/gptqd quantize configs/tiny-bloom.yaml --restart
mpirun "${mpi_flags[@]}" build/gptqd eval configs/tiny-bloom.yaml
{ set +x; } 2>/dev/null
echo
echo "Inspect the checkpoint with: build/gptqd inspect out/tiny-bloom.h5"
