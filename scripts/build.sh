#!/usr/bin/env bash
# Configures and builds gptqd in build/ (Release). The CUDA backend is built when
# nvcc exists (/usr/local/cuda is looked at even when it is not on PATH).
# Usage: scripts/build.sh [cmake --build args, e.g. --target gptqd]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
cuda=OFF
if command -v nvcc >/dev/null 2>&1 || [[ -n "${CUDACXX:-}" ]]; then cuda=ON; fi
cuda=${GPTQD_CUDA:-$cuda}
if [[ ! -f build/CMakeCache.txt ]] || ! grep -q "GPTQD_CUDA:BOOL=$cuda" build/CMakeCache.txt; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGPTQD_CUDA="$cuda" >/dev/null
fi
cmake --build build -j "$(nproc)" "$@"
