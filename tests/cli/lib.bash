# Shared by tests/cli/*.sh: paths, a small random BLOOM, a tokens file, mpirun flags.
set -euo pipefail
SRC=${GPTQD_SOURCE_DIR:?}
BIN=${GPTQD_BIN:?}
WORK=$(mktemp -d /tmp/gptqd-cli-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
MPIRUN=(mpirun --oversubscribe --allow-run-as-root)
export OMPI_MCA_btl_vader_single_copy_mechanism=none

fail() { echo "FAIL: $*" >&2; exit 1; }

# make_model DIR [extra make_tiny_bloom args]: 2 blocks, hidden 64, 4 heads, vocab 512.
make_model() {
  local dir=$1; shift
  python3 "$SRC/scripts/make_tiny_bloom.py" "$dir" --layers 2 --hidden 64 --heads 4 --vocab 512 "$@"
}

# Which family the multi-rank tests run on (their *_llama.sh twins set GPTQD_TEST_FAMILY=llama):
# make_family_model DIR puts a 4-block model of that family in DIR; FIRST_LAYER names the first
# linear of its blocks, LAYERS_PER_BLOCK counts them.
GPTQD_TEST_FAMILY=${GPTQD_TEST_FAMILY:-bloom}
case $GPTQD_TEST_FAMILY in
  bloom) FIRST_LAYER=self_attention.query_key_value LAYERS_PER_BLOCK=4 ;;
  llama) FIRST_LAYER=self_attn.q_proj LAYERS_PER_BLOCK=7 ;;
  *) echo "unknown GPTQD_TEST_FAMILY $GPTQD_TEST_FAMILY" >&2; exit 1 ;;
esac
make_family_model() {
  if [[ $GPTQD_TEST_FAMILY == llama ]]; then
    cp -r "$SRC/models/tiny-llama" "$1"  # random, 4 blocks, 4 heads / 2 KV heads, vocab 4096
  else
    make_model "$1" --layers 4
  fi
}

# make_tokens FILE N: a 1-D I32 "tokens" tensor of N ids below 512.
make_tokens() {
  python3 - "$1" "$2" <<'PY'
import json, struct, sys, random
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
data = struct.pack(f"<{n}i", *[rng.randrange(4, 512) for _ in range(n)])
h = json.dumps({"tokens": {"dtype": "I32", "shape": [n], "data_offsets": [0, len(data)]}}).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
PY
}

# write_config FILE MODEL_DIR CHECKPOINT [extra quant lines]
write_config() {
  cat >"$1" <<YAML
model:
  path: $2
calibration:
  tokens: $WORK/tokens.safetensors
  nsamples: 8
  seqlen: 32
quant:
  bits: 4
  group_size: 32
${4:-}
output:
  checkpoint: $3
YAML
}
