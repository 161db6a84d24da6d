#!/usr/bin/env bash
# Runs the libFuzzer harnesses of tests/fuzz (ASan + UBSan) one after another, each for a fixed
# time on a copy of its committed corpus (tests/fuzz/corpus/<harness>), and prints per harness:
# executions, corpus size, peak RSS and the result. Exit code 1 when any harness found a crash,
# leak, out-of-memory (> 2048 MB) or timeout (> 10 s for one input); 2 for a usage error.
#
# Usage: scripts/fuzz.sh [--minutes N | --seconds N] [--build-dir DIR] [--no-build] [harness...]
#   --minutes N    time per harness (default 10)
#   --seconds N    the same in seconds (the `fuzz` ctest label runs 25 s each)
#   --build-dir D  clang build to configure and use (default build-fuzz)
#   --no-build     use the harnesses already built in D
#   harness...     fuzz_tokenizer_load fuzz_tokenizer_encode fuzz_job_yaml fuzz_safetensors
#                  fuzz_config_json fuzz_checkpoint (default: all of them)
# Installs clang and libFuzzer (scripts/install-deps.sh --fuzz) when missing. Results, the grown
# corpus and any crashing input go to <build-dir>/fuzz-out/<harness>/. See docs/fuzzing.md.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ALL=(fuzz_tokenizer_load fuzz_tokenizer_encode fuzz_job_yaml fuzz_safetensors fuzz_config_json
     fuzz_checkpoint)
seconds=600
build="$ROOT/build-fuzz"
do_build=1
harnesses=()

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }
while (($#)); do
  case $1 in
    --minutes) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; seconds=$(($2 * 60)); shift 2 ;;
    --seconds) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; seconds=$2; shift 2 ;;
    --build-dir) [[ -n ${2:-} ]] || usage; build=$(realpath -m "$2"); shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; usage ;;
    *) [[ " ${ALL[*]} " == *" $1 "* ]] || { echo "fuzz.sh: no harness $1 (${ALL[*]})" >&2; exit 2; }
       harnesses+=("$1"); shift ;;
  esac
done
((${#harnesses[@]})) || harnesses=("${ALL[@]}")

if ((do_build)); then
  if ! command -v clang++ >/dev/null ||
     ! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; then
    "$ROOT/scripts/install-deps.sh" --fuzz
  fi
  mkdir -p "$build"  # the configure log lives inside the (ignored) build directory
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$build" -DGPTQD_FUZZ=ON -DGPTQD_CUDA=OFF \
    -DGPTQD_BENCH=OFF >"$build/configure.log" 2>&1 ||
    { tail -20 "$build/configure.log"; exit 1; }
  nice -n 10 cmake --build "$build" -j "${JOBS:-2}" --target "${harnesses[@]}"
fi

# UBSan findings stop the run (the code is built with -fno-sanitize-recover too); leaks are
# checked after every input that allocated more than it freed.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# fuzz_checkpoint rewrites a small HDF5 file per input: in memory where there is /dev/shm.
[[ -n ${TMPDIR:-} || ! -w /dev/shm ]] || export TMPDIR=/dev/shm

failed=0
table=()
for h in "${harnesses[@]}"; do
  bin="$build/tests/fuzz/$h"
  [[ -x $bin ]] || { echo "fuzz.sh: $bin is not built" >&2; exit 1; }
  out="$build/fuzz-out/$h"
  rm -rf "$out"
  mkdir -p "$out/corpus" "$out/artifacts"
  cp "$ROOT/tests/fuzz/corpus/$h/"* "$out/corpus/"
  seeds=$(find "$out/corpus" -type f | wc -l)
  echo "== $h: $seconds s on $seeds seeds (log $out/log)"
  set +e
  (cd "$out" && nice -n 10 "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/" corpus) >"$out/log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$out/log" | tail -1)
  corpus=$(find "$out/corpus" -type f | wc -l)
  kb=$(du -sk "$out/corpus" | cut -f1)
  found=$(find "$out/artifacts" -type f | wc -l)
  result=ok
  if ((rc != 0 || found != 0)); then
    failed=1
    result="FAIL rc=$rc: $(find "$out/artifacts" -type f -printf '%f ' | cut -c1-120)"
    grep -m3 -E "ERROR: |runtime error|SUMMARY" "$out/log" || tail -5 "$out/log"
  fi
  table+=("$(printf '%-22s %6ss %12s %7s/s %6s files %6s kB %7s MB %8s  %s' "$h" "$seconds" \
    "${execs:-?}" "$(( ${execs:-0} / (seconds > 0 ? seconds : 1) ))" "$corpus" "$kb" \
    "${rss:-?}" "$found" "$result")")
  echo "${table[-1]}"
done

echo
printf '%-22s %7s %12s %9s %12s %9s %10s %8s  %s\n' harness time execs rate corpus size peak_rss crashes \
  result
printf '%s\n' "${table[@]}"
exit $failed
