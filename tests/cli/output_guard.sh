#!/usr/bin/env bash
# The job never overwrites its inputs (compared by file identity), a second job on a locked
# checkpoint is refused naming the holder, and non-finite quantizer parameters are an error
# naming run, block, layer and row (issue 14, items 3 and 4). Each refusal: one error line,
# exit code 1, no checkpoint written, the input unchanged.
source "$(dirname "$0")/lib.bash"

make_model "$WORK/m"
make_tokens "$WORK/tokens.safetensors" 4000
printf 'Some calibration text for the tokenizer.\n' >"$WORK/calib.txt"
sum() { sha256sum "$1" | cut -d' ' -f1; }

# expect_refusal NAME CONFIG PATTERN [VICTIM]: exit code 1, one error line matching PATTERN,
# VICTIM (an input file) unchanged, no .creating file beside it.
expect_refusal() {
  local name=$1 cfg=$2 pattern=$3 victim=${4:-}
  local before=""
  [[ -n $victim ]] && before=$(sum "$victim")
  expect_one_error "$name" 1 "$pattern" bounded "${MPIRUN[@]}" -np 2 "$BIN" quantize "$cfg" --restart
  if [[ -n $victim ]]; then
    [[ $(sum "$victim") == "$before" ]] || fail "$name: $victim was modified"
    [[ ! -e $victim.creating ]] || fail "$name: $victim.creating was written"
  fi
}

# 1. output.checkpoint naming an input, spelled another way each time.
write_config "$WORK/model.yaml" "$WORK/m" "$WORK/./m/model.safetensors"
expect_refusal model-file "$WORK/model.yaml" "model file .*model.safetensors" "$WORK/m/model.safetensors"
ln -s "$WORK/m/config.json" "$WORK/link.h5"
write_config "$WORK/config.yaml" "$WORK/m" "$WORK/link.h5"
expect_refusal config-via-symlink "$WORK/config.yaml" "model file .*config.json" "$WORK/m/config.json"
ln "$WORK/tokens.safetensors" "$WORK/hardlink.h5"
write_config "$WORK/tokens.yaml" "$WORK/m" "$WORK/hardlink.h5"
expect_refusal tokens-via-hardlink "$WORK/tokens.yaml" "calibration.tokens" "$WORK/tokens.safetensors"
write_config "$WORK/self.yaml" "$WORK/m" "$WORK/self.yaml"
expect_refusal job-file "$WORK/self.yaml" "job file .*self.yaml" "$WORK/self.yaml"
cat >"$WORK/text.yaml" <<YAML
model:
  path: $WORK/m
calibration:
  text: $WORK/calib.txt
  nsamples: 2
  seqlen: 8
output:
  checkpoint: $WORK/calib.txt
YAML
expect_refusal calibration-text "$WORK/text.yaml" "calibration.text .*calib.txt" "$WORK/calib.txt"
printf 'eval text\n' >"$WORK/eval.txt"
write_config "$WORK/eval.yaml" "$WORK/m" "$WORK/eval.txt"
printf 'eval:\n  text: %s\n' "$WORK/eval.txt" >>"$WORK/eval.yaml"
expect_refusal eval-text "$WORK/eval.yaml" "eval.text .*eval.txt" "$WORK/eval.txt"

# 2. The lock: a holder (here flock(1), standing for a running job) makes a second job refuse,
# naming the holder's pid and host; nothing is written.
ckpt="$WORK/locked.h5"
write_config "$WORK/locked.yaml" "$WORK/m" "$ckpt"
printf 'pid 4242 on node-a\n' >"$ckpt.lock"
flock -o -x "$ckpt.lock" sleep 60 &  # -o: only flock itself holds the lock
holder=$!
sleep 0.5
expect_refusal locked "$WORK/locked.yaml" "in use by another gptqd job \(pid 4242 on node-a"
[[ ! -e $ckpt ]] || fail "locked: the checkpoint was written"
sleeper=$(pgrep -P "$holder" || true)
kill "$holder" $sleeper
wait "$holder" 2>/dev/null || true
# Released: the job runs, and removes its lock file at the end.
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/locked.yaml" >"$WORK/run.out" 2>"$WORK/run.err" ||
  { cat "$WORK/run.err"; fail "the job after the lock was released failed"; }
[[ -e $ckpt && ! -e $ckpt.lock ]] || fail "after the job: checkpoint missing or lock file left"
echo "ok   unlocked: the job ran and removed $ckpt.lock"

# 3. Finite weights whose group range overflows fp32: an error naming run, block, layer, row.
python3 - "$WORK/m" "$WORK/huge" <<'PY'
import json, os, shutil, struct, sys
src, dst = sys.argv[1:]
shutil.copytree(src, dst)
p = os.path.join(dst, "model.safetensors")
raw = bytearray(open(p, "rb").read())
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n])
t = h["transformer.h.1.self_attention.dense.weight"]
assert t["dtype"] == "F32"
cols = t["shape"][1]
off = 8 + n + t["data_offsets"][0]
row = 5
struct.pack_into("<ff", raw, off + 4 * (row * cols), 3e38, -3e38)
open(p, "wb").write(raw)
PY
write_config "$WORK/huge.yaml" "$WORK/huge" "$WORK/huge.h5"
set +e
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/huge.yaml" >"$WORK/huge.out" 2>"$WORK/huge.err"
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "huge: exit code 0"
grep -E "error:.*run w4g32 block 1 self_attention.dense: row 5 group 0: the quantizer's scale is inf" \
  "$WORK/huge.err" >/dev/null || { cat "$WORK/huge.err"; fail "huge: no error naming run, block, layer, row"; }
echo "ok   huge: $(grep -m1 'error:' "$WORK/huge.err" | sed 's/.*error: //')"
echo "all output-guard cases refused"
