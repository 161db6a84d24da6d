#!/usr/bin/env bash
# Configures and builds gptqd in build/ (Release). The CUDA backend is built when
# nvcc exists (/usr/local/cuda is looked at even when it is not on PATH), with the
# cuSOLVERMp factorizer (scripts/get-cusolvermp.sh fetches it).
# Usage: scripts/build.sh [cmake --build args, e.g. --target gptqd]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
cuda=OFF
if command -v nvcc >/dev/null 2>&1 || [[ -n "${CUDACXX:-}" ]]; then cuda=ON; fi
cuda=${GPTQD_CUDA:-$cuda}
# The CUDA backend's distributed factorizer needs cuSOLVERMp's wheels; without them (no
# network) the build goes on without it and CMake says so.
# GPTQD_CUSOLVERMP_FETCH=0 skips the fetch (offline machines).
if [[ $cuda == ON && ${GPTQD_CUSOLVERMP_FETCH:-1} != 0 ]] && ! scripts/get-cusolvermp.sh; then
  echo "build: could not fetch cuSOLVERMp; building without its factorizer" >&2
fi
# Configure when there is no build yet, the CUDA setting changed, or the wheel arrived after
# the last configure (CMake looks for it only then).
if [[ ! -f build/CMakeCache.txt ]] || ! grep -q "GPTQD_CUDA:BOOL=$cuda" build/CMakeCache.txt ||
  [[ .whl/cusolvermp/.complete -nt build/CMakeCache.txt ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGPTQD_CUDA="$cuda" >/dev/null
fi
cmake --build build -j "$(nproc)" "$@"
