#!/usr/bin/env bash
# bench/blas_kernels.sh: what OpenBLAS's kernel choice costs gptqd's CPU phases (issue 23 item 5).
# Runs bench/cpu_threads at one thread under each OPENBLAS_CORETYPE the CPU can run, interleaved
# ROUNDS times, and prints each phase's CPU seconds (the least of the rounds: CPU time, not wall
# time, so that other work on a shared machine moves it least) and its ratio to the widest kernels.
#   bench/blas_kernels.sh [BUILD_DIR] [ROUNDS]      (default build, 3; SmolLM2-135M's shapes)
set -euo pipefail
BUILD=${1:-build}
ROUNDS=${2:-3}
BIN="$BUILD/bench/cpu_threads"
[[ -x $BIN ]] || { echo "blas_kernels: $BIN not built (cmake --build $BUILD --target cpu_threads)" >&2; exit 2; }
types=(Prescott)
grep -qw avx /proc/cpuinfo && types+=(Sandybridge)
grep -qw avx2 /proc/cpuinfo && types+=(Haswell)
grep -qw avx512f /proc/cpuinfo && types+=(SkylakeX)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((r = 0; r < ROUNDS; r++)); do
  for t in "${types[@]}"; do
    OPENBLAS_CORETYPE=$t "$BIN" --threads 1 --reps 2 --hidden 576 --heads 9 --ffn 1536 --seq 512 \
      --samples 8 | awk -v t="$t" '/^(gemm|attention|pointwise|hessian|factor|gptq|all) / {print t, $1, $5}' >>"$out"
  done
done
echo "OpenBLAS kernels, CPU seconds per phase (least of $ROUNDS rounds), ratio to ${types[-1]}:"
python3 - "$out" "${types[@]}" <<'PY'
import collections, sys
rows = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    t, phase, cpu = line.split()
    rows[phase][t] = min(float(cpu), rows[phase].get(t, float("inf")))
types = sys.argv[2:]
print(f"{'phase':10}" + "".join(f"{t:>22}" for t in types))
for phase, by in rows.items():
    print(f"{phase:10}" + "".join(f"{by[t]:>12.3f} s {by[t] / by[types[-1]]:5.2f}x" for t in types))
PY
