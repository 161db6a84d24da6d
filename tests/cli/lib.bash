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

# Which family the multi-rank tests run on (their *_llama.sh and *_moe.sh twins set
# GPTQD_TEST_FAMILY=llama or moe):
# make_family_model DIR puts a 4-block model of that family in DIR; FIRST_LAYER names the first
# linear of its blocks, LAYERS_PER_BLOCK counts them.
GPTQD_TEST_FAMILY=${GPTQD_TEST_FAMILY:-bloom}
case $GPTQD_TEST_FAMILY in
  bloom) FIRST_LAYER=self_attention.query_key_value LAYERS_PER_BLOCK=4 ;;
  llama) FIRST_LAYER=self_attn.q_proj LAYERS_PER_BLOCK=7 ;;
  # Qwen2-MoE: q, k, v, o, 3 experts x 3 and the shared expert's 3 (router and gate unquantized)
  moe) FIRST_LAYER=self_attn.q_proj LAYERS_PER_BLOCK=16 ;;
  *) echo "unknown GPTQD_TEST_FAMILY $GPTQD_TEST_FAMILY" >&2; exit 1 ;;
esac
make_family_model() {
  if [[ $GPTQD_TEST_FAMILY == llama ]]; then
    cp -r "$SRC/models/tiny-llama" "$1"  # random, 4 blocks, 4 heads / 2 KV heads, vocab 4096
  elif [[ $GPTQD_TEST_FAMILY == moe ]]; then
    # tests/fixtures/moe/qwen2_moe (3 experts, top-1, shared expert) made 4 blocks deep
    /usr/bin/python3 "$SRC/tests/cli/make_moe_model.py" "$SRC/tests/fixtures/moe/qwen2_moe" "$1" blocks=4
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

# The calibration mode of write_config's jobs (the *_original.sh twins of the multi-rank tests
# set GPTQD_TEST_INPUTS=original: stages that quantize at the same time).
GPTQD_TEST_INPUTS=${GPTQD_TEST_INPUTS:-quantized}

# write_config FILE MODEL_DIR CHECKPOINT [extra quant lines]
write_config() {
  cat >"$1" <<YAML
model:
  path: $2
calibration:
  tokens: $WORK/tokens.safetensors
  nsamples: 8
  seqlen: 32
  inputs: $GPTQD_TEST_INPUTS
quant:
  bits: 4
  group_size: 32
${4:-}
output:
  checkpoint: $3
YAML
}

# expect_one_error NAME WANT PATTERN COMMAND...: a refusal as every command promises it. COMMAND
# exits with code WANT ("nonzero": any code but 0; 124 means a timeout ran out), its stderr holds
# exactly one "error:" line, and that line matches PATTERN (grep -E). Its stdout and stderr are
# kept in $WORK/NAME.out and $WORK/NAME.err; prints "ok   NAME: <the message>".
expect_one_error() {
  local name=$1 want=$2 pattern=$3 rc=0
  shift 3
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if [[ $want == nonzero ]]; then
    [[ $rc -ne 0 ]] || { cat "$WORK/$name.err"; fail "$name: exit code 0"; }
  else
    [[ $rc -eq $want ]] || { tail -5 "$WORK/$name.err"; fail "$name: exit code $rc, expected $want (124: timeout)"; }
  fi
  local lines
  lines=$(grep -c "error:" "$WORK/$name.err" || true)
  [[ $lines -eq 1 ]] || { cut -c1-300 "$WORK/$name.err"; fail "$name: expected 1 error line, got $lines"; }
  grep "error:" "$WORK/$name.err" | grep -qE -- "$pattern" ||
    { cut -c1-300 "$WORK/$name.err"; fail "$name: error does not match '$pattern'"; }
  echo "ok   $name: $(grep 'error:' "$WORK/$name.err" | sed 's/.*error: //' | cut -c1-200)"
}

# bounded COMMAND...: COMMAND under 4 GiB of address space and BOUND_SECONDS (default 120) of
# wall time, so a refusal that hangs or blows up its memory fails instead of stalling the suite.
bounded() { (ulimit -v $((4 * 1024 * 1024)); timeout "${BOUND_SECONDS:-120}" "$@"); }

# no_checkpoint NAME FILE: the refused job left neither FILE nor FILE.creating.
no_checkpoint() { [[ ! -e $2 && ! -e $2.creating ]] || fail "$1: $2 was written"; }

# For tests that stop a rank (SIGSTOP through a test hook) and watch it from outside:
# rank_pid LAUNCHER RANK: the pid of that rank among the launcher's children.
rank_pid() {
  local p
  for p in $(pgrep -P "$1"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}
# state PID: the process's state letter (T: stopped, Z: zombie; empty once it is gone).
state() { awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null; }
