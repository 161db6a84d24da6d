#!/usr/bin/env bash
# The second Python environment: a transformers new enough for every model family gptqd
# supports (Qwen3 needs transformers >= 4.51, llama3 rope_scaling >= 4.43, an explicit
# head_dim for Llama ~4.45+), for scripts/make_family_fixtures.py and scripts/train_tiny_llama.py.
# scripts/python-env.sh (Debian's torch 1.13 + transformers 4.36.2) stays the BLOOM one.
#
# Why torch from PyPI: transformers >= 4.51 does not import on Debian's torch 1.13 (its
# modeling_utils imports torch.distributed.tensor, torch >= 2.5). PyPI's Linux torch wheels
# pull the nvidia-* CUDA wheels: about 3.0 GB to download (torch 2.5.1: 0.9 GB, cudnn 0.67 GB,
# cublas 0.36 GB, ...; newer torch is no smaller), about 6 GB installed. Only the CPU is used.
# The venv is .venv-hf at the repo root (gitignored), isolated from Debian's site-packages.
# Idempotent: a second run checks the pins and installs nothing.
#
#   source scripts/python-env-hf.sh   # sets and exports GPTQD_HF_PYTHON, prints it
#   bash scripts/python-env-hf.sh     # creates/updates .venv-hf, prints the python path
#
# Needs python3-venv (scripts/install-deps.sh --python) and PyPI the first time.
# Sourcing leaves the caller's shell options alone: the work runs in a subshell.

_gptqd_python_env_hf() (
  set -euo pipefail
  local root venv
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="${root}/.venv-hf"
  local pins=(
    "torch==2.5.1"
    "transformers==4.57.6"
    "tokenizers==0.22.2"
    "safetensors==0.8.0"
    "huggingface-hub==0.36.2"
    "numpy==2.4.6"
  )
  if [[ ! -x "${venv}/bin/python" ]]; then
    /usr/bin/python3 -m venv "${venv}" >&2
  fi
  # Install only when an installed version differs from its pin (or is missing).
  if ! "${venv}/bin/python" - "${pins[@]}" 2>/dev/null <<'PY'; then
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
PY
    echo "python-env-hf: installing ${pins[*]} into ${venv} (about 3 GB the first time)" >&2
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
      "${pins[@]}" >&2
  fi
  echo "${venv}/bin/python"
)

if GPTQD_HF_PYTHON="$(_gptqd_python_env_hf)"; then
  export GPTQD_HF_PYTHON
  echo "${GPTQD_HF_PYTHON}"
  unset -f _gptqd_python_env_hf
else
  unset -f _gptqd_python_env_hf
  echo "python-env-hf: failed to set up the virtualenv" >&2
  # return when sourced, exit when run
  return 1 2>/dev/null || exit 1
fi
