#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (CUDA backend too where
# nvcc exists), runs ctest. Ends with ctest's summary; exits non-zero on failure.
# Usage: scripts/test.sh [ctest args, e.g. -L unit or -R Gptq]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 900 "$@"
