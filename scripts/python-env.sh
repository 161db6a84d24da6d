#!/usr/bin/env bash
# The Python environment the fixture and model scripts run in: a virtualenv .venv at the repo
# root built on Debian's /usr/bin/python3 with --system-site-packages (so it sees python3-torch
# 1.13, numpy and h5py), plus pinned HF packages that work with torch 1.13 on Python 3.11, and
# gguf (llama.cpp's reader and dequantizer, pure Python on numpy >= 1.17: Debian's 1.24 does)
# for scripts/get_smollm2.py.
# Idempotent: a second run checks the pins and installs nothing.
#
#   source scripts/python-env.sh   # sets and exports GPTQD_PYTHON, prints it
#   bash scripts/python-env.sh     # creates/updates .venv, prints the python path
#
# Needs python3-venv and python3-pip (scripts/install-deps.sh --python) and PyPI the first time.
# Sourcing leaves the caller's shell options alone: the work runs in a subshell.

_gptqd_python_env() (
  set -euo pipefail
  local root venv
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="${root}/.venv"
  local pins=(
    "tokenizers==0.15.2"
    "transformers==4.36.2"
    "safetensors==0.4.2"
    "huggingface-hub==0.20.3"
    "gguf==0.17.1"
  )
  if [[ ! -x "${venv}/bin/python" ]]; then
    /usr/bin/python3 -m venv --system-site-packages "${venv}" >&2
  fi
  # Install only when an installed version differs from its pin (or is missing).
  if ! "${venv}/bin/python" - "${pins[@]}" 2>/dev/null <<'PY'; then
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
PY
    echo "python-env: installing ${pins[*]} into ${venv}" >&2
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
  fi
  echo "${venv}/bin/python"
)

if GPTQD_PYTHON="$(_gptqd_python_env)"; then
  export GPTQD_PYTHON
  echo "${GPTQD_PYTHON}"
  unset -f _gptqd_python_env
else
  unset -f _gptqd_python_env
  echo "python-env: failed to set up the virtualenv" >&2
  # return when sourced, exit when run
  return 1 2>/dev/null || exit 1
fi
