#!/usr/bin/env bash
# No resume and no eval mixes two models (issue 20 item 2): the checkpoint stores a digest of the
# weights each block (and the embedding) was quantized from (weights_digest), and a resumed
# quantize or an eval compares the weights it reads with it. On the quick start's model
# (models/tiny-bloom, copied), after a job killed with block 0 complete:
#   a. one weight of block 0 changed in place: the rerun is refused, one line naming block 0,
#      exit 1, the checkpoint byte for byte untouched;
#   b. model.safetensors replaced by a new file with one value of block 0 changed: refused;
#   e. one value of the embedding changed: refused, naming the embedding;
#   g. two stages, block 2 complete on stage 1 (rank 1) and changed: refused by rank 1, one line;
#   h. block 1 to be quantized again (found damaged) while block 2, computed through it, is
#      complete, and block 1 changed: refused (block 2's data came from block 1's old weights);
#   d. eval of a complete checkpoint: works with the original weights, refused naming block 2
#      when block 2 changed.
# Controls: the shard replaced by an identical copy (new inode and mtime) resumes and completes;
# a change in block 3 (no complete block depends on it) resumes, completes, and equals a fresh
# run on the changed model (and differs from the run on the original one: the change mattered); the
# damaged block 1 of h with its weights unchanged is quantized again; a checkpoint without
# weights_digest (made before it) resumes a changed model with one warning line (the check is
# what refuses, nothing else).
source "$(dirname "$0")/lib.bash"

M=$WORK/m
cp -r "$SRC/models/tiny-bloom" "$M"
cp "$M/model.safetensors" "$WORK/orig.safetensors"
head -c 12000 "$SRC/data/austen-eval.txt" >"$WORK/eval.txt"
# job FILE CHECKPOINT [extra lines]: the quick start's settings (two runs), fewer samples.
job() {
  cat >"$1" <<YAML
model:
  path: $M
calibration:
  text: $SRC/data/austen-train.txt
  nsamples: 8
  seqlen: 64
  seed: 0
quant:
  group_size: 128
sweep:
  bits: [4, 3]
output:
  checkpoint: $2
eval:
  text: $WORK/eval.txt
  seqlen: 64
${3:-}
YAML
}
job "$WORK/job.yaml" "$WORK/ck.h5"
# run NAME CMD...: runs CMD with 2 ranks, one thread each; its exit status in $rc.
run() {
  local name=$1; shift
  set +e
  "${MPIRUN[@]}" -np 2 "$BIN" "$@" --threads 1 >"$WORK/$name.out" 2>"$WORK/$name.err"
  rc=$?
  set -e
}
# completion FILE: the completion maps as "run:0101 run:..." in sweep order.
completion() {
  /usr/bin/python3 -c "import h5py,sys; f=h5py.File(sys.argv[1],'r'); print(' '.join(r+':'+''.join(str(int(v)) for v in f['runs'][r]['complete'][()]) for r in f.attrs['runs']))" "$1"
}
# flip TENSOR [replace]: flips the lowest bit of the first byte of the model's tensor whose name
# ends with TENSOR (fp32: one weight moves by one ulp), in place (numpy memmap at the tensor's
# offset), or with `replace` in a new file renamed over model.safetensors (a new inode).
flip() {
  /usr/bin/python3 - "$M/model.safetensors" "$1" "${2:-}" <<'PY'
import json, os, struct, sys
import numpy as np
path, name, mode = sys.argv[1:4]
with open(path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    hdr = json.loads(f.read(n))
key = next(k for k in hdr if k.endswith(name))
begin = 8 + n + hdr[key]["data_offsets"][0]
if mode == "replace":
    data = bytearray(open(path, "rb").read())
    data[begin] ^= 1
    open(path + ".new", "wb").write(data)
    os.replace(path + ".new", path)
else:
    mm = np.memmap(path, dtype=np.uint8, mode="r+", offset=begin, shape=(1,))
    mm[0] ^= 1
    mm.flush()
PY
}
restore() { cp "$WORK/orig.safetensors" "$M/model.safetensors"; }
# refused NAME WHAT: the run NAME failed with exit 1 and exactly one error line, naming WHAT.
refused() {
  [[ $rc -eq 1 ]] || { cat "$WORK/$1.err"; fail "$1: exit $rc, expected 1"; }
  local n
  n=$(grep -c "error:" "$WORK/$1.err" || true)
  [[ $n -eq 1 ]] || { cat "$WORK/$1.err"; fail "$1: $n error lines, expected one"; }
  grep -q "error: checkpoint .* was quantized from other weights than model $M holds.*: $2 (weights digest" \
    "$WORK/$1.err" || { cat "$WORK/$1.err"; fail "$1: the error line does not name $2"; }
  echo "ok   $1 refused: $(grep -o "error:.*" "$WORK/$1.err" | cut -c1-190)..."
}

# A job killed right after block 0 of the first run is marked: w4g128 1000, w3g128 0000.
GPTQD_TEST_KILL_AT_BLOCK=0 run kill quantize "$WORK/job.yaml"
[[ $rc -ne 0 ]] || fail "the killed job exited 0"
map=$(completion "$WORK/ck.h5")
[[ $map == "w4g128:1000 w3g128:0000" ]] || { cat "$WORK/kill.err"; fail "after the kill: $map"; }
cp "$WORK/ck.h5" "$WORK/partial.h5"
"$BIN" inspect "$WORK/ck.h5" >"$WORK/inspect0.out"
grep -qE "^weights digests: 1 of 4 blocks, embedding [0-9a-f]{16}$" "$WORK/inspect0.out" ||
  { cat "$WORK/inspect0.out"; fail "inspect's weights digests line after the kill"; }
echo "ok   partial checkpoint: $map; $(grep "weights digests" "$WORK/inspect0.out")"

# a. One weight of block 0 (complete) changed in place.
flip h.0.mlp.dense_4h_to_h.weight
run a quantize "$WORK/job.yaml"
refused a "block 0's weights differ"
cmp -s "$WORK/ck.h5" "$WORK/partial.h5" || fail "a: the refused job changed the checkpoint"
restore

# b. The shard replaced by a new file with one value of block 0 changed.
flip h.0.self_attention.query_key_value.weight replace
run b quantize "$WORK/job.yaml"
refused b "block 0's weights differ"
cmp -s "$WORK/ck.h5" "$WORK/partial.h5" || fail "b: the refused job changed the checkpoint"
restore

# e. One value of the embedding changed (stage 0 embeds the calibration inputs with it).
flip word_embeddings.weight
run e quantize "$WORK/job.yaml"
refused e "the embedding differs"
cmp -s "$WORK/ck.h5" "$WORK/partial.h5" || fail "e: the refused job changed the checkpoint"
restore

# Control: the shard replaced by an identical copy (new inode, new mtime) resumes and completes.
cp "$WORK/orig.safetensors" "$M/model.safetensors.new"
mv "$M/model.safetensors.new" "$M/model.safetensors"
run c1 quantize "$WORK/job.yaml"
[[ $rc -eq 0 ]] || { cat "$WORK/c1.err"; fail "control: the unchanged model did not resume"; }
grep -q "block 0 (1/4 .*resumed from checkpoint" "$WORK/c1.err" || fail "control: block 0 not resumed"
"$BIN" inspect "$WORK/ck.h5" --verify >/dev/null || fail "control: verify after the resume"
"$BIN" inspect "$WORK/ck.h5" >"$WORK/inspect1.out"
grep -qE "^weights digests: 4 of 4 blocks, embedding" "$WORK/inspect1.out" ||
  { cat "$WORK/inspect1.out"; fail "control: inspect after the resume"; }
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/ck.h5" >"$WORK/orig.json"
cp "$WORK/ck.h5" "$WORK/complete.h5"
echo "ok   control: an identical copy of the shard resumes and completes"

# Control: a change only in block 3, complete in no run, resumes; the result is a fresh run's on
# the changed model, and not the original model's.
cp "$WORK/partial.h5" "$WORK/ck.h5"
flip h.3.mlp.dense_h_to_4h.weight
run c2 quantize "$WORK/job.yaml"
[[ $rc -eq 0 ]] || { cat "$WORK/c2.err"; fail "control: a change in an incomplete block refused"; }
job "$WORK/fresh.yaml" "$WORK/fresh.h5"
run fresh quantize "$WORK/fresh.yaml"
[[ $rc -eq 0 ]] || { cat "$WORK/fresh.err"; fail "fresh run on the changed model"; }
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/fresh.h5" >"$WORK/fresh.json"
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/ck.h5" "$WORK/fresh.json" ||
  fail "control: the resumed checkpoint differs from a fresh run on the changed model"
if /usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/ck.h5" "$WORK/orig.json" >/dev/null 2>&1; then
  fail "control: block 3's change did not change the checkpoint"
fi
restore
echo "ok   control: a change in block 3 (incomplete) resumes, equal to a fresh run on that model"

# d. eval of the complete checkpoint: the original weights work, block 2 changed is refused.
job "$WORK/eval.yaml" "$WORK/complete.h5"
run d0 eval "$WORK/eval.yaml"
[[ $rc -eq 0 ]] || { cat "$WORK/d0.err"; fail "eval with the original weights: exit $rc"; }
grep -qE "^w4g128 +4 +128 +GPTQ" "$WORK/d0.out" || { cat "$WORK/d0.out"; fail "eval's table"; }
flip h.2.self_attention.dense.weight
run d1 eval "$WORK/eval.yaml"
refused d1 "block 2's weights differ"
restore
echo "ok   eval: original weights evaluated, block 2 changed refused"

# g. Two stages: block 2 is stage 1's (rank 1), complete after a kill there, then changed.
job "$WORK/stages.yaml" "$WORK/stages.h5" "parallel:
  stages: 2"
GPTQD_TEST_KILL_AT_BLOCK=2 run gkill quantize "$WORK/stages.yaml"
map=$(completion "$WORK/stages.h5")
[[ $map == w4g128:111* ]] || { cat "$WORK/gkill.err"; fail "two stages, after the kill: $map"; }
cp "$WORK/stages.h5" "$WORK/stages.partial.h5"
flip h.2.mlp.dense_4h_to_h.weight
run g quantize "$WORK/stages.yaml"
refused g "block 2's weights differ"
grep -q "\[rank 1\].*error:" "$WORK/g.err" || { cat "$WORK/g.err"; fail "g: not refused by rank 1"; }
cmp -s "$WORK/stages.h5" "$WORK/stages.partial.h5" || fail "g: the refused job changed the checkpoint"
restore

# h. Block 1 is quantized again (a damaged code: the resume's read-back clears its mark) while
# block 2, complete, was computed through block 1's old weights: block 1 changed is refused.
# damage FILE: one code of w4g128's block 1 moved to another 4-bit value.
damage() {
  /usr/bin/python3 - "$1" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    c = f["runs/w4g128/blocks/1/self_attention.dense/codes"]
    c[3, 5] = (int(c[3, 5]) + 1) % 16
PY
}
cp "$WORK/stages.partial.h5" "$WORK/stages.h5"
damage "$WORK/stages.h5"
flip h.1.mlp.dense_h_to_4h.weight
run h quantize "$WORK/stages.yaml"
refused h "block 1's weights differ"
grep -q "run w4g128 block 1 will be quantized again" "$WORK/h.err" || { cat "$WORK/h.err"; fail "h: block 1 was not found damaged"; }
restore
# Control: the same damage with the weights unchanged resumes and completes.
cp "$WORK/stages.partial.h5" "$WORK/stages.h5"
damage "$WORK/stages.h5"
run h0 quantize "$WORK/stages.yaml"
[[ $rc -eq 0 ]] || { cat "$WORK/h0.err"; fail "control: a damaged block 1 with its weights unchanged"; }
grep -q "run w4g128 block 1 will be quantized again" "$WORK/h0.err" || fail "control: no damage found"
echo "ok   control: damaged block 1 with unchanged weights quantized again, job complete"

# Control: a checkpoint made before weights_digest (dataset removed) resumes the changed model,
# saying once that it cannot check the weights.
cp "$WORK/partial.h5" "$WORK/ck.h5"
/usr/bin/python3 -c "import h5py,sys; del h5py.File(sys.argv[1],'r+')['weights_digest']" "$WORK/ck.h5"
"$BIN" inspect "$WORK/ck.h5" >"$WORK/inspect2.out"
grep -q "^weights digests: none" "$WORK/inspect2.out" ||
  { cat "$WORK/inspect2.out"; fail "inspect of a file without digests"; }
flip h.0.mlp.dense_4h_to_h.weight
run f quantize "$WORK/job.yaml"
[[ $rc -eq 0 ]] || { cat "$WORK/f.err"; fail "a checkpoint without digests did not resume"; }
[[ $(grep -c "has no weights digests" "$WORK/f.err") -eq 1 ]] ||
  { cat "$WORK/f.err"; fail "the missing digests are not said once"; }
restore
echo "ok   control: without weights_digest the changed model resumes, with one warning"
echo "weights changed: ok"
