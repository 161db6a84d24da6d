#!/usr/bin/env bash
# The GPU check, run on a bare GPU machine from the repository root with the kit carried:
#
#   run(command="bash scripts/gpu-check.sh", carry=["kit"], timeout_s=600)   # the device tool
#
# needs kit/ from scripts/gpu-kit.sh (programs + Debian runtime libraries; the CUDA libraries
# and the driver are the machine's). One step after another, each under its own timeout and
# logged to its own file under $OUT (default out/gpu-check), a failing step logged and the next
# one run; then $OUT/summary.txt with every figure. About 8 minutes at most (GPTQD_CHECK_BUDGET
# seconds, default 450: a step never outlasts what is left of it). Without a GPU the GPU steps
# say so and are skipped (gpu_tests and gpu_gptq still start and skip themselves).
#   setup.log      unpacking, loader and Open MPI relocation (ldd, ompi_info --path), gptqd --help
#   nvidia-smi.log the device, driver, clocks, memory
#   gpu-tests.log  gpu_tests: every CUDA op against its CPU twin (tests/gpu), --gtest_brief
#   bench.log      bench/gpu_gptq, one BLOOM-like block at hidden 4096 and 14336: time, TFLOP/s
#                  and fraction of peak per phase
#   models.log     gptqd quantize + eval of tiny-bloom and tiny-llama on parallel.device cuda
#                  and cpu (1 rank each; eval on the first 48 kB of data/austen-eval.txt);
#                  checkpoints compared (codes agreement, perplexity)
#   two-ranks.log  tiny-bloom on 2 ranks sharing the one GPU (see the step for the transport)
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
OUT=${OUT:-$repo/out/gpu-check}
mkdir -p "$OUT"
summary=$OUT/summary.txt
budget=${GPTQD_CHECK_BUDGET:-450}
start=$SECONDS
work=${GPTQD_CHECK_WORK:-/tmp/gptqd-check}
rm -rf "$work"; mkdir -p "$work"

say() { echo "$*" | tee -a "$summary"; }
: > "$summary"
say "gptqd gpu-check $(date -u +%FT%TZ) on $(hostname), repo $repo ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))"

# step NAME LOG TIMEOUT CMD...: runs CMD (a shell function or program) with its output in
# $OUT/LOG, under TIMEOUT seconds or what is left of the budget; records the outcome.
step() {
  local name=$1 log=$OUT/$2 limit=$3; shift 3
  local left=$((budget - (SECONDS - start)))
  ((left < limit)) && limit=$left
  if ((limit < 5)); then
    say "[$name] SKIPPED: the ${budget} s budget is spent"; return 0
  fi
  local t0=$SECONDS rc
  { echo "== $name: $* (timeout ${limit} s)"; } >> "$log"
  timeout -k 10 "$limit" bash -c "$(declare -f); $(printf '%q ' "$@")" >> "$log" 2>&1
  rc=$?
  local took=$((SECONDS - t0))
  case $rc in
    0) say "[$name] ok (${took} s)" ;;
    77) say "[$name] SKIPPED (${took} s): $(tail -1 "$log")" ;;
    124|137) say "[$name] TIMEOUT after ${limit} s (log: $(basename "$log"))" ;;
    *) say "[$name] FAILED rc=$rc (${took} s; log: $(basename "$log")): $(grep -v '^\s*$' "$log" | tail -1 | cut -c1-200)" ;;
  esac
  return 0
}

# ---- setup: the kit ----------------------------------------------------------------------------
export OUT repo work
{
  echo "== kit"; cat kit/MANIFEST.txt 2>/dev/null | head -5
  uname -a; (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"); ldd --version | head -1
} > "$OUT/setup.log" 2>&1
# shellcheck source=kit/env.sh
if ! source scripts/kit/env.sh >> "$OUT/setup.log" 2>&1; then
  say "[setup] FAILED: the kit did not unpack (see setup.log); nothing else can run"
  exit 1
fi
export KIT KIT_LD
setup() {
  echo "KIT_LD=$KIT_LD"; env | grep -E '^(OPAL|PMIX|OMPI)_' | sort
  kit ldd "$KIT/bin/gptqd" | grep -E 'not found|=>' | sed 's/ (0x.*//'
  kit ompi_info --path all 2>&1 | grep -E 'Prefix|Libdir|Pkglibdir|Pkgdatadir|Sysconfdir'
  kit ompi_info 2>&1 | grep -E 'Open MPI:|MCA (pml|btl): ' | head -12
  kit gptqd --help
}
step setup setup.log 60 setup

gpu=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then gpu=1; fi
skip_no_gpu() { echo "no GPU visible (nvidia-smi -L lists none): skipped"; return 77; }

# ---- 1. nvidia-smi -----------------------------------------------------------------------------
smi() {
  nvidia-smi || return
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv
  nvcc --version 2>/dev/null | tail -2
}
if ((gpu)); then step nvidia-smi nvidia-smi.log 20 smi; else step nvidia-smi nvidia-smi.log 20 skip_no_gpu; fi
grep -A1 '^name,' "$OUT/nvidia-smi.log" 2>/dev/null | tail -1 | sed 's/^/  device: /' | tee -a "$summary"

# ---- 2. the GPU tests (ctest -L gpu minus the 2-GPU NCCL test: this machine has one GPU) --------
gpu_tests() { cd "$repo" && kit "$KIT/bin/gpu_tests" --gtest_brief=1 --gtest_color=no; }
step gpu-tests gpu-tests.log 100 gpu_tests
grep -E '^\[ +(PASSED|FAILED|SKIPPED) +\]|^\[  FAILED  \]' "$OUT/gpu-tests.log" | sed 's/^/  /' | tee -a "$summary"
((gpu)) || say "  (no GPU: the tests skipped themselves)"

# ---- 3. bench/gpu_gptq: one block, per phase ----------------------------------------------------
bench() { kit "$KIT/bin/gpu_gptq" --hidden "$1" --heads "$2" --nsamples "$3"; }
step "bench hidden 4096" bench.log 60 bench 4096 32 128
step "bench hidden 14336" bench.log 150 bench 14336 112 128
grep -E 'TFLOP|peak|projection|per block|whole model|replicas|output error|^[a-zA-Z].*[0-9] s' "$OUT/bench.log" |
  grep -v '^==' | sed 's/^/  /' | tee -a "$summary"

# ---- 4. tiny-bloom and tiny-llama: cuda against cpu ----------------------------------------------
# config MODEL DEVICE GROUP: a job of the model at 4 and 3 bits on DEVICE.
config() {
  cat > "$work/$1-$2.yaml" <<YAML
model:
  path: $repo/models/tiny-$1
calibration:
  text: $repo/data/austen-train.txt
  nsamples: 32
  seqlen: 128
  seed: 0
quant:
  group_size: $3
  sym: false
  act_order: false
  true_sequential: true
  damp_percent: 0.01
sweep:
  bits: [4, 3]
parallel:
  stages: auto
  device: $2
output:
  checkpoint: $work/$1-$2.h5
eval:
  text: $work/eval.txt
  seqlen: 128
YAML
}
# The held-out text's first 48 kB (about 100 windows of 128 tokens): eval runs five passes
# (original, then RTN and GPTQ of each run) per model and device, so the whole text would not
# fit the step's time on the CPU side.
head -c 48000 "$repo/data/austen-eval.txt" | sed '$d' > "$work/eval.txt"   # whole lines
models() {
  local rc=0 m d
  for m in bloom llama; do
    for d in cpu cuda; do
      [[ $m == bloom ]] && config $m $d 128 || config $m $d 32
      echo "-- $m on $d: quantize"
      kit_mpirun -np 1 "$KIT/bin/gptqd" quantize "$work/$m-$d.yaml" --restart || { rc=1; continue; }
      echo "-- $m on $d: eval"
      kit_mpirun -np 1 "$KIT/bin/gptqd" eval "$work/$m-$d.yaml" | tee "$work/$m-$d.eval" || rc=1
    done
    echo "-- $m: compare cuda with cpu"
    python3 "$repo/scripts/kit/compare_ckpt.py" --name "tiny-$m" --labels cpu cuda "$work/$m-cpu.h5" "$work/$m-cuda.h5" \
      --eval "$work/$m-cpu.eval" "$work/$m-cuda.eval" | tee -a "$work/compare.txt" || rc=1
  done
  return $rc
}
if ((gpu)); then step "models cuda vs cpu" models.log 150 models; else step "models cuda vs cpu" models.log 5 skip_no_gpu; fi
[[ -f $work/compare.txt ]] && sed 's/^/  /' "$work/compare.txt" | tee -a "$summary"

# ---- 5. two ranks on the one GPU ------------------------------------------------------------------
# gptqd picks the transport in coordinator/execution.cpp: NCCL whenever every rank sees a GPU,
# the MPI transport only on the CPU backend; and select_local_device gives both ranks device 0
# when the host shows one GPU. NCCL refuses two ranks on one device ("Duplicate GPU detected"),
# so this step passes only once gptqd can pair the CUDA backend with the MPI transport. Where
# docs/config-reference.md documents a `parallel.transport` key, the step sets it to mpi.
two_ranks() {
  config bloom cuda 128
  sed -i "s#checkpoint: .*#checkpoint: $work/bloom-cuda-2r.h5#" "$work/bloom-cuda.yaml"
  if grep -q '`transport`' "$repo/docs/config-reference.md"; then
    sed -i 's/^  device: cuda$/  device: cuda\n  transport: mpi/' "$work/bloom-cuda.yaml"
    echo "parallel.transport: mpi set"
  else
    echo "gptqd has no transport setting: with a GPU on every rank it uses NCCL, which refuses two ranks on one GPU"
  fi
  kit_mpirun -np 2 "$KIT/bin/gptqd" quantize "$work/bloom-cuda.yaml" --restart || return
  [[ -f $work/bloom-cuda.h5 ]] || return 0
  python3 "$repo/scripts/kit/compare_ckpt.py" --name "tiny-bloom cuda, 1 vs 2 ranks" \
    "$work/bloom-cuda.h5" "$work/bloom-cuda-2r.h5" | tee -a "$work/compare2.txt"
}
if ((gpu)); then step "two ranks, one GPU" two-ranks.log 60 two_ranks; else step "two ranks, one GPU" two-ranks.log 5 skip_no_gpu; fi
grep -E 'transport|Duplicate GPU|NCCL' "$OUT/two-ranks.log" 2>/dev/null | head -3 | cut -c1-200 | sed 's/^/  /' | tee -a "$summary"
[[ -f $work/compare2.txt ]] && sed 's/^/  /' "$work/compare2.txt" | tee -a "$summary"

say "total $((SECONDS - start)) s; files in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
exit 0
