#!/usr/bin/env bash
# Quick start: installs what is missing, builds gptqd, and quantizes the small BLOOM
# that ships in models/tiny-bloom on 2 MPI ranks (CPU), printing per-layer errors.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh --target gptqd
mpi_flags=(-np 2 --oversubscribe)
if [[ $(id -u) -eq 0 ]]; then mpi_flags+=(--allow-run-as-root); fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none   # containers often forbid CMA
set -x
mpirun "${mpi_flags[@]}" build/gptqd quantize configs/tiny-bloom.yaml --restart
{ set +x; } 2>/dev/null
echo
echo "Inspect the checkpoint with: build/gptqd inspect out/tiny-bloom.h5"
