#!/usr/bin/env bash
# Loads gptqd's exports with the real loaders and compares them with `gptqd eval`:
#   GPTQModel.load, transformers + optimum + gptqmodel, transformers' compressed-tensors loader
#     (env .venv-peer: gptqmodel 7.7.0, optimum 2.3.0, compressed-tensors 0.20.0, transformers 5)
#   AutoGPTQForCausalLM.from_quantized, transformers + optimum + auto-gptq
#     (env .venv-peer-autogptq: auto-gptq 0.7.1, optimum 1.23.3, transformers 4.46.3, torch 2.5.1)
# Perplexity (data/austen-eval-20k.txt, windows of 128) within 1e-3 relative of `gptqd eval`'s and
# the same greedy text as the dequantized weights in plain transformers (tests/peer/). The same
# test is ctest's label `peer` (`scripts/test.sh -L peer`), which skips until the environments
# exist. Results are cached under out/peer/ (a rerun loads only what changed).
#
#   scripts/peer-check.sh              # build/refresh the envs (cached), quantize, export, load
#                                      # (GPTQD_BIN=path/to/gptqd, default build/gptqd)
#   scripts/peer-check.sh --envs-only  # only build the environments
#
# The environments are built once under .venv-peer*/ (gitignored) and reused; the first build
# downloads PyTorch from PyPI with its CUDA wheels (several GB) and gptqmodel compiles its CPU
# kernel on its first use (minutes). Needs PyPI the first time; CPU only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${GPTQD_PEER_PYTHON:-python3}

# env DIR PACKAGE==VERSION...: a venv with exactly these pins (installs only what differs).
make_env() {
  local venv=$1; shift
  if [[ ! -x "$venv/bin/python" ]]; then
    "$PY" -m venv "$venv"
  fi
  if ! "$venv/bin/python" - "$@" 2>/dev/null <<'PYEOF'; then
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:] if "==" in p)))
PYEOF
    echo "peer-check: installing $* into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
  fi
}

build_envs() {
  make_env "$ROOT/.venv-peer" gptqmodel==7.7.0 optimum==2.3.0 compressed-tensors==0.20.0 \
    transformers==5.24.0 torch==2.15.0
  # auto-gptq 0.7.1's wheel is built for torch 2.2 / CUDA 12.1; its CUDA kernels do not load
  # on CPU and it falls back to its torch kernels, which is what is tested here.
  # Its era's numpy 1, and the datasets/pyarrow/peft that import with it (auto-gptq imports
  # all three): the newest releases need numpy 2 or have moved peft's internals.
  make_env "$ROOT/.venv-peer-autogptq" torch==2.5.1 transformers==4.46.3 optimum==1.23.3 \
    auto-gptq==0.7.1 accelerate==1.1.1 numpy==1.26.4 datasets==2.21.0 pyarrow==17.0.0 peft==0.13.2
}

build_envs
[[ ${1:-} == --envs-only ]] && exit 0
exec bash "$ROOT/tests/peer/peer_loaders.sh" "$@"
