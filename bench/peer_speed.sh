#!/usr/bin/env bash
# bench/peer_speed.sh: gptqd against the fastest peer on the same model, same windows, same
# setting and the same threads, measured in one run, with the ratio printed (issue 23 item 6).
# The fastest peer measured on this kind of machine is llm-compressor (docs/peer-quality.md); it
# quantizes SmolLM2-135M at its closest mapping of gptqd's setting (4-bit asym, group 64,
# act_order with static groups, true-sequential, damp 0.01), and gptqd runs the same
# (gptqd-static). scripts/peer-quality.sh does the work: pinned venvs from PyPI (opt-in: the
# first run downloads torch), gptqd's own window draw written once and read by both tools, one
# tool at a time, every result's perplexity by the same protocol.
#
#   bench/peer_speed.sh                 # 128 x 512 windows, 2 threads, 1 round (~10 min here)
#   bench/peer_speed.sh --quick         # 16 windows (~4 min)
#   bench/peer_speed.sh --rounds 2      # rounds alternate the order (peer first, then gptqd
#                                       # first); each tool keeps its fastest round
#   bench/peer_speed.sh --gptqmodel     # also GPTQModel against gptqd at group 128
#   --threads N, GPTQD_BIN=path/to/gptqd (default build/gptqd)
#
# Printed: per pair, end to end (load + quantize + save/export, wall), the quantize step alone,
# CPU seconds, perplexity, and gptqd's speed-up over the peer (peer s / gptqd s: 2.00x means
# gptqd takes half the time); the target is 2x end to end with perplexity no worse beyond the
# noise the BLAS kernel alone makes (docs/peer-quality.md). The machine's load average is printed
# before and after: the ratio is only as good as the machine is quiet.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS=1 THREADS=2 QUICK=() PAIRS=("gptqd-static llmcompressor")
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=(--quick) ;;
    --rounds) ROUNDS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --gptqmodel) PAIRS+=("gptqd gptqmodel") ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "peer_speed: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
OUT=out/peer-speed
mkdir -p "$OUT"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# best[tool] = "process quantize cpu ppl" of the tool's fastest round (by process s).
declare -A best
for ((r = 1; r <= ROUNDS; r++)); do
  for pair in "${PAIRS[@]}"; do
    read -r ours peer <<<"$pair"
    order="$peer,$ours"
    ((r % 2 == 0)) && order="$ours,$peer"
    log=$OUT/round$r-$peer.log
    echo "round $r: $order ($(date -u +%H:%M:%S) UTC)"
    scripts/peer-quality.sh "${QUICK[@]}" --tools "$order" --threads "$THREADS" \
      --out "$OUT/round$r" >"$log" 2>"$log.err" ||
      { echo "peer_speed: peer-quality failed, see $log.err" >&2; tail -5 "$log.err" >&2; exit 1; }
    # Table rows: | tool | version | options | perplexity | quantize s | process s | cpu s |
    for tool in $ours $peer; do
      row=$(awk -F'|' -v t="$tool" '{for (i = 1; i <= NF; i++) gsub(/^ +| +$/, "", $i)}
        $2 == t {print $7, $6, $8, $5}' "$log")
      [[ -n $row ]] || { echo "peer_speed: no row for $tool in $log" >&2; exit 1; }
      read -r proc _ _ _ <<<"$row"
      if [[ -z ${best[$tool]:-} ]] || awk -v a="$proc" -v b="${best[$tool]%% *}" 'BEGIN{exit !(a < b)}'; then
        best[$tool]=$row
      fi
      echo "  $tool: process ${row%% *} s"
    done
  done
done

echo
echo "| pair | tool | end to end s | quantize s | cpu s | perplexity | gptqd speed-up |"
echo "|---|---|---:|---:|---:|---:|---:|"
for pair in "${PAIRS[@]}"; do
  read -r ours peer <<<"$pair"
  read -r op oq oc oppl <<<"${best[$ours]}"
  read -r pp pq pc pppl <<<"${best[$peer]}"
  ratio=$(awk -v a="$pp" -v b="$op" 'BEGIN{printf "%.2fx", a / b}')
  qratio=$(awk -v a="$pq" -v b="$oq" 'BEGIN{printf "%.2fx", a / b}')
  echo "| $ours vs $peer | $peer | $pp | $pq | $pc | $pppl | |"
  echo "| | $ours | $op | $oq | $oc | $oppl | **$ratio** end to end, $qratio quantize |"
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
grep -h "threads on rank 0\|BLAS kernels" "$OUT"/round1/gptqd*.quantize.log 2>/dev/null | head -2 | sed 's/^.*\] //'
