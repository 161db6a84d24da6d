#!/usr/bin/env bash
# Routed experts sharded over a stage's replicas against replicated (issue 19 item 3;
# worker/expert_shards.h), measured in one run on the same random Mixtral-shaped model:
#   replicated            every replica sums, holds and factorizes every expert's Hessians
#   sharded, hessians     partial Hessians of every expert, summed at each expert's owner
#   sharded, activations  the routed rows sent to the owners: a replica holds its experts' only
# 2 ranks = 1 stage x 2 replicas, rounds alternating the order; per mode the fastest round's
# wall time, rank 0's factorization and Hessian-sum phases, the largest peak of backend buffers
# of a rank (the job's "measured peak" line: on a GPU what the device held) and the largest
# resident set of a rank (/usr/bin/time), with the ratios to replicated. The model is written
# once (numpy, fp32).
#
#   bench/moe_shard.sh [BUILD_DIR] [--experts 16] [--hidden 1024] [--ffn 2048] [--blocks 2]
#                      [--samples 16] [--seqlen 128] [--rounds 2] [--threads 1]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$SRC/build
if [[ $# -gt 0 && $1 != --* ]]; then BUILD=$1; shift; fi
EXPERTS=16 HIDDEN=1024 FFN=2048 BLOCKS=2 SAMPLES=16 SEQLEN=128 ROUNDS=2 THREADS=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --experts) EXPERTS=$2 ;; --hidden) HIDDEN=$2 ;; --ffn) FFN=$2 ;; --blocks) BLOCKS=$2 ;;
    --samples) SAMPLES=$2 ;; --seqlen) SEQLEN=$2 ;; --rounds) ROUNDS=$2 ;; --threads) THREADS=$2 ;;
    -h | --help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "moe_shard.sh: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
  shift 2
done
BIN=$BUILD/gptqd
[[ -x $BIN ]] || { echo "moe_shard.sh: no $BIN (build first)" >&2; exit 2; }
WORK=$(mktemp -d /tmp/moe_shard.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
MPIRUN=(mpirun --oversubscribe --bind-to none)
[[ $(id -u) -eq 0 ]] && MPIRUN+=(--allow-run-as-root)

/usr/bin/python3 - "$WORK/model" "$EXPERTS" "$HIDDEN" "$FFN" "$BLOCKS" "$WORK/tokens.safetensors" \
  "$((SAMPLES * SEQLEN * 2))" <<'PY'
import json, os, struct, sys
import numpy as np
out, E, h, f, L, tok_path, ntok = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6], int(sys.argv[7])
os.makedirs(out)
V, heads, kv = 512, max(1, h // 64), max(1, h // 256)
rng = np.random.default_rng(3)
t = {"model.embed_tokens.weight": rng.normal(0, 1, (V, h)), "model.norm.weight": np.ones(h),
     "lm_head.weight": rng.normal(0, h ** -0.5, (V, h))}
for b in range(L):
    p = f"model.layers.{b}."
    t[p + "input_layernorm.weight"] = np.ones(h)
    t[p + "post_attention_layernorm.weight"] = np.ones(h)
    hd = h // heads
    for n, rows in (("q", heads * hd), ("k", kv * hd), ("v", kv * hd)):
        t[p + f"self_attn.{n}_proj.weight"] = rng.normal(0, h ** -0.5, (rows, h))
    t[p + "self_attn.o_proj.weight"] = rng.normal(0, h ** -0.5, (h, h))
    t[p + "block_sparse_moe.gate.weight"] = rng.normal(0, h ** -0.5, (E, h))
    for e in range(E):
        q = p + f"block_sparse_moe.experts.{e}."
        t[q + "w1.weight"] = rng.normal(0, h ** -0.5, (f, h))
        t[q + "w3.weight"] = rng.normal(0, h ** -0.5, (f, h))
        t[q + "w2.weight"] = rng.normal(0, f ** -0.5, (h, f))
header, blobs, off = {}, [], 0
for k, a in t.items():
    b = np.ascontiguousarray(a, dtype=np.float32).tobytes()
    header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
hj = json.dumps(header).encode()
hj += b" " * ((8 - len(hj) % 8) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as fh:
    fh.write(struct.pack("<Q", len(hj)) + hj)
    for b in blobs:
        fh.write(b)
json.dump({"model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "hidden_size": h,
           "intermediate_size": f, "num_hidden_layers": L, "num_attention_heads": heads,
           "num_key_value_heads": kv, "num_local_experts": E, "num_experts_per_tok": 2,
           "vocab_size": V, "rms_norm_eps": 1e-5, "rope_theta": 1e6, "hidden_act": "silu",
           "max_position_embeddings": 4096, "tie_word_embeddings": False,
           "torch_dtype": "float32"}, open(os.path.join(out, "config.json"), "w"))
rng = np.random.default_rng(7)
data = rng.integers(4, V, ntok, dtype=np.int32).tobytes()
hj = json.dumps({"tokens": {"dtype": "I32", "shape": [ntok], "data_offsets": [0, len(data)]}}).encode()
hj += b" " * ((8 - len(hj) % 8) % 8)
open(tok_path, "wb").write(struct.pack("<Q", len(hj)) + hj + data)
PY

MODES=(replicated hessians activations)
for m in "${MODES[@]}"; do
  moe="  exchange: $m"
  [[ $m == replicated ]] && moe="  experts: replicated"
  cat >"$WORK/$m.yaml" <<YAML
model:
  path: $WORK/model
calibration:
  tokens: $WORK/tokens.safetensors
  nsamples: $SAMPLES
  seqlen: $SEQLEN
quant:
  bits: 4
  group_size: 128
moe:
$moe
parallel:
  factorization: replicated
output:
  checkpoint: $WORK/$m.h5
YAML
done

echo "moe_shard: Mixtral-shaped, $EXPERTS experts top-2 of $HIDDEN x $FFN, $BLOCKS blocks," \
  "$SAMPLES x $SEQLEN tokens, 2 ranks = 1 stage x 2 replicas, --threads $THREADS," \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A WALL FACTOR SUMS RSS PEAK
for ((r = 1; r <= ROUNDS; r++)); do
  order=("${MODES[@]}")
  ((r % 2 == 0)) && order=(activations hessians replicated)
  for m in "${order[@]}"; do
    rm -f "$WORK/$m.h5"
    start=$(date +%s%N)
    "${MPIRUN[@]}" -np 2 /usr/bin/time -f "maxrss_kb %M" "$BIN" quantize "$WORK/$m.yaml" \
      --threads "$THREADS" >"$WORK/$m.out" 2>"$WORK/$m.err" ||
      { tail -20 "$WORK/$m.err"; echo "moe_shard: $m failed" >&2; exit 1; }
    wall=$((($(date +%s%N) - start) / 1000000))
    phases=$(grep "stage 0 phases" "$WORK/$m.err" | tail -1)
    fac=$(sed -E 's/.*factorization ([0-9.]+) s.*/\1/' <<<"$phases")
    sums=$(sed -E 's/.*Hessian sums ([0-9.]+) s.*/\1/' <<<"$phases")
    rss=$(grep -o "maxrss_kb [0-9]*" "$WORK/$m.err" | awk '{ if ($2 > m) m = $2 } END { print m }')
    peak=$(sed -nE 's/.*measured peak of backend buffers: ([0-9.]+ [KMG]iB).*/\1/p' "$WORK/$m.err")
    echo "round $r $m: ${wall} ms, factorization ${fac} s, Hessian sums ${sums} s," \
      "backend peak $peak, max RSS $((rss / 1024)) MiB"
    if [[ -z ${WALL[$m]:-} || $wall -lt ${WALL[$m]} ]]; then
      WALL[$m]=$wall FACTOR[$m]=$fac SUMS[$m]=$sums
    fi
    RSS[$m]=$rss PEAK[$m]=$peak
  done
done
python3 - "${WALL[replicated]}" "${FACTOR[replicated]}" "${RSS[replicated]}" "${PEAK[replicated]}" \
  "${WALL[hessians]}" "${FACTOR[hessians]}" "${RSS[hessians]}" "${PEAK[hessians]}" \
  "${WALL[activations]}" "${FACTOR[activations]}" "${RSS[activations]}" "${PEAK[activations]}" <<'PY'
import sys
a = sys.argv[1:]
def mib(s):  # "536.9 MiB" / "2.1 GiB" / "532 KiB" as MiB
    v, u = s.split()
    return float(v) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[u]
rows = {}
for i, name in enumerate(["replicated", "sharded, hessians", "sharded, activations"]):
    w, f, r, p = a[4 * i:4 * i + 4]
    rows[name] = (float(w), float(f), float(r), mib(p))
base = rows["replicated"]
print(f"{'experts':22} {'wall s':>8} {'factor s':>9} {'backend MiB':>12} {'RSS MiB':>8}  vs replicated")
for name, (w, f, r, p) in rows.items():
    print(f"{name:22} {w / 1000:8.2f} {f:9.3f} {p:12.1f} {r / 1024:8.0f}  wall {w / base[0]:.2f}x, "
          f"factorization {f / max(base[1], 1e-9):.2f}x, backend peak {p / base[3]:.2f}x")
PY
