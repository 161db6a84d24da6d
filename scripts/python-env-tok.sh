#!/usr/bin/env bash
# The Python environment of the tokenizer-form fixtures (scripts/make_tokenizer_forms.py) and the
# tokenizer benchmark's reference: a virtualenv .venv-tok at the repo root on Debian's
# /usr/bin/python3 with a pinned, newer HF tokenizers than scripts/python-env.sh's 0.15.2.
# Llama 3's tokenizer.json sets "ignore_merges": true, which tokenizers reads from 0.19 on, and
# Metaspace's prepend_scheme is read as released files write it from 0.19 on.
# Idempotent: a second run checks the pin and installs nothing.
#
#   source scripts/python-env-tok.sh   # sets and exports GPTQD_TOK_PYTHON, prints it
#   bash scripts/python-env-tok.sh     # creates/updates .venv-tok, prints the python path
#
# Needs python3-venv and python3-pip and PyPI the first time. Sourcing leaves the caller's shell
# options alone: the work runs in a subshell.

_gptqd_python_env_tok() (
  set -euo pipefail
  local root venv
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="${root}/.venv-tok"
  local pins=(
    "tokenizers==0.21.1"
  )
  if [[ ! -x "${venv}/bin/python" ]]; then
    /usr/bin/python3 -m venv "${venv}" >&2
  fi
  if ! "${venv}/bin/python" - "${pins[@]}" 2>/dev/null <<'PY'; then
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
PY
    echo "python-env-tok: installing ${pins[*]} into ${venv}" >&2
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
  fi
  echo "${venv}/bin/python"
)

if GPTQD_TOK_PYTHON="$(_gptqd_python_env_tok)"; then
  export GPTQD_TOK_PYTHON
  echo "${GPTQD_TOK_PYTHON}"
  unset -f _gptqd_python_env_tok
else
  unset -f _gptqd_python_env_tok
  echo "python-env-tok: failed to set up the virtualenv" >&2
  return 1 2>/dev/null || exit 1
fi
