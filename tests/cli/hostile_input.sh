#!/usr/bin/env bash
# Hostile job files, model configs and calibration inputs (issue 14, items 1, 2 and 5): each is
# refused before any work with one error line naming the culprit, exit code 1, no checkpoint
# written, in bounded memory (ulimit -v 4 GiB) and time (60 s).
source "$(dirname "$0")/lib.bash"

make_model "$WORK/m"
make_tokens "$WORK/tokens.safetensors" 4000

# expect_refusal NAME CONFIG PATTERN: exit code 1, one error line matching PATTERN, no
# checkpoint ($WORK/NAME.h5) and no .creating file.
expect_refusal() {
  BOUND_SECONDS=60 expect_one_error "$1" 1 "$3" bounded "${MPIRUN[@]}" -np 2 "$BIN" quantize "$2"
  no_checkpoint "$1" "$WORK/$1.h5"
}

# job NAME [calibration lines] [quant lines] [extra sections]: a job file writing $WORK/NAME.h5.
job() {
  local name=$1
  cat >"$WORK/$name.yaml" <<YAML
model:
  path: ${MODEL:-$WORK/m}
calibration:
${2:-  tokens: $WORK/tokens.safetensors
  nsamples: 8
  seqlen: 32}
quant:
  bits: 4
${3:-  group_size: 32}
${4:-}
output:
  checkpoint: $WORK/$name.h5
YAML
}

# 1. YAML that made yaml-cpp 0.7's LoadAll loop forever, growing ~270 MB/s.
printf ',' >"$WORK/comma.yaml"
expect_refusal comma "$WORK/comma.yaml" "comma.yaml:1:1: YAML syntax error: unexpected ','"
printf '[a],' >"$WORK/flowcomma.yaml"
expect_refusal flowcomma "$WORK/flowcomma.yaml" "flowcomma.yaml:1:4: YAML syntax error: unexpected ','"
job trailing
printf ',\n' >>"$WORK/trailing.yaml"
expect_refusal trailing "$WORK/trailing.yaml" "trailing.yaml:13:1: YAML syntax error"

# 2. Sizes: a sweep list longer than the run cap, a file over the job-file cap, group_size
# 2^63-1, nsamples x seqlen overflowing int64, a damping lost in fp32.
python3 -c "print('[' + ', '.join(['4'] * 300000) + ']')" >"$WORK/list.txt"
job longsweep "" "" "sweep:
  bits: $(cat "$WORK/list.txt")"
expect_refusal longsweep "$WORK/longsweep.yaml" "sweep.bits: lists 300000 values; a sweep expands to at most 4096 runs"
python3 -c "print('[' + ', '.join(['4'] * 1000000) + ']')" >"$WORK/list.txt"
job hugefile "" "" "sweep:
  bits: $(cat "$WORK/list.txt")"
expect_refusal hugefile "$WORK/hugefile.yaml" "hugefile.yaml: the job file is [0-9]+ bytes; a job file is at most 1048576 bytes"
job groupmax "" "  group_size: 9223372036854775807"
expect_refusal groupmax "$WORK/groupmax.yaml" "groupmax.yaml:[0-9]+:[0-9]+: quant.group_size: 9223372036854775807 is out of range"
job overflow "  tokens: $WORK/tokens.safetensors
  nsamples: 4611686018427387904
  seqlen: 4"
expect_refusal overflow "$WORK/overflow.yaml" "calibration.nsamples: nsamples x seqlen = 4611686018427387904 x 4 is more than"
job tinydamp "" "  group_size: 32
  damp_percent: 1e-300"
expect_refusal tinydamp "$WORK/tinydamp.yaml" "quant.damp_percent: 1e-300 is too small"

# 3. Calibration text that is not a regular file.
job devzero "  text: /dev/zero
  nsamples: 8
  seqlen: 32"
printf '{"version":"1.0","model":{"type":"BPE","vocab":{},"merges":[]}}' >"$WORK/m/tokenizer.json"
expect_refusal devzero "$WORK/devzero.yaml" "calibration.text: '/dev/zero' is not a regular file"
mkdir -p "$WORK/textdir"
job textdir "  text: $WORK/textdir
  nsamples: 8
  seqlen: 32"
expect_refusal textdir "$WORK/textdir.yaml" "calibration.text: '.*textdir' is not a regular file"
rm "$WORK/m/tokenizer.json"

# 4. config.json with absurd dimensions.
for n in 1000000000 4611686018427387904; do
  rm -rf "$WORK/big$n"
  cp -r "$WORK/m" "$WORK/big$n"
  python3 - "$WORK/big$n/config.json" "$n" <<'PY'
import json, sys
p, n = sys.argv[1], int(sys.argv[2])
c = json.load(open(p)); c["n_layer"] = n; json.dump(c, open(p, "w"))
PY
  MODEL="$WORK/big$n" job "nlayer$n"
  expect_refusal "nlayer$n" "$WORK/nlayer$n.yaml" "config.json: key 'n_layer' is $n, more than gptqd supports"
done

# 5. Token ids outside the vocabulary (512), caught before the checkpoint is created.
python3 - "$WORK/badtok.safetensors" <<'PY'
import json, struct, sys
ids = [5] * 4000; ids[1234] = 600
data = struct.pack(f"<{len(ids)}i", *ids)
h = json.dumps({"tokens": {"dtype": "I32", "shape": [8, 500], "data_offsets": [0, len(data)]}}).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + data)
PY
job badtok "  tokens: $WORK/badtok.safetensors
  nsamples: 8
  seqlen: 500"
expect_refusal badtok "$WORK/badtok.yaml" "badtok.safetensors: token id 600 \(window 2, position 234\) is outside the model's vocabulary \[0, 512\)"

# 6. The machine: device cuda without a GPU (CPU-only build or host), and more host memory than
# the limit allows (the CPU path checks host memory too).
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1 || [[ ${GPTQD_TEST_NO_GPU:-} == 1 ]]; then
  job nogpu "" "" "parallel:
  device: cuda"
  expect_refusal nogpu "$WORK/nogpu.yaml" "parallel.device: cuda requested but not every rank has a CUDA device"
else
  echo "skip nogpu: this machine has a GPU"
fi
job hostmem "  tokens: $WORK/tokens.safetensors
  nsamples: 2000000
  seqlen: 32" "" "parallel:
  device: cpu"
expect_refusal hostmem "$WORK/hostmem.yaml" "needs [0-9.]+ GiB of host memory on this node .* but [0-9.]+ GiB are available"
make_tokens "$WORK/long.safetensors" 200001
job seqlen100k "  tokens: $WORK/long.safetensors
  nsamples: 8
  seqlen: 100000" "" "parallel:
  device: cpu"
expect_refusal seqlen100k "$WORK/seqlen100k.yaml" "needs [0-9.]+ GiB of host memory on this node"

# 7. Near misses of issue 20 item 5, refused where the input is read.
# rope_theta whose rotary inverse frequencies theta^(-2i/head_dim) are not finite in fp32 (1e-300
# is 0 in fp32): refused when config.json is read, naming the key and its value (was a
# non-finite Hessian blamed on the calibration inputs, after the checkpoint was created). The 4.x
# key and transformers 5's rope_parameters object.
make_rope_model() {  # DIR HOW THETA: tiny-llama with that theta
  rm -rf "$1" && cp -r "$SRC/models/tiny-llama" "$1"
  python3 - "$1/config.json" "$2" "$3" <<'PY'
import json, sys
p, how, theta = sys.argv[1], sys.argv[2], float(sys.argv[3])
c = json.load(open(p))
if how == "legacy":
    c["rope_theta"] = theta
else:
    del c["rope_theta"], c["rope_scaling"]
    c["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
json.dump(c, open(p, "w"))
PY
}
make_rope_model "$WORK/ropelegacy" legacy 1e-300
MODEL=$WORK/ropelegacy job ropelegacy
expect_refusal ropelegacy "$WORK/ropelegacy.yaml" "ropelegacy/config.json: key 'rope_theta' is 1e-300: the rotary inverse frequency theta\^\(-2/16\) is inf in fp32 \(head_dim 16\)"
make_rope_model "$WORK/ropeparams" params 1e-300
MODEL=$WORK/ropeparams job ropeparams
expect_refusal ropeparams "$WORK/ropeparams.yaml" "ropeparams/config.json rope_parameters: key 'rope_theta' is 1e-300: the rotary inverse frequency"
# Control: the refusal comes from the value. A small theta whose frequencies fp32 holds (1e-30)
# passes the same reading (gptqd plan reads config.json as quantize does), 1e-300 does not.
make_rope_model "$WORK/ropesmall" params 1e-30
MODEL=$WORK/ropesmall job ropesmall
"$BIN" plan "$WORK/ropesmall.yaml" --ranks 2 >"$WORK/ropesmall.out" 2>&1 ||
  { cat "$WORK/ropesmall.out"; fail "control: rope_theta 1e-30 was refused"; }
if "$BIN" plan "$WORK/ropeparams.yaml" --ranks 2 >"$WORK/ropeplan.out" 2>&1; then
  fail "control: gptqd plan accepted rope_theta 1e-300"
fi
echo "ok   control: rope_theta 1e-30 is read, 1e-300 refused by plan too"

# A NUL byte in a path (a double-quoted "\0" in YAML): refused with the whole path shown escaped
# (the OS would open the path cut at the NUL, and the error line was cut there too).
MODEL="\"$WORK/m\\0tail\"" job nulmodel
expect_refusal nulmodel "$WORK/nulmodel.yaml" "nulmodel.yaml:[0-9]+:[0-9]+: model.path: \"$WORK/m\\\\x00tail\" holds a NUL byte \(\\\\x00 at byte [0-9]+\); a path or name cannot contain one"
job nultext "  text: \"$WORK/t\\0.txt\"
  nsamples: 8
  seqlen: 32"
expect_refusal nultext "$WORK/nultext.yaml" "calibration.text: \"$WORK/t\\\\x00\.txt\" holds a NUL byte"
# Control: the same job file with the NUL escape spelled as a plain character is read (and
# refused later, for the missing directory): the refusal above is the NUL's.
sed 's#\\0tail#Xtail#' "$WORK/nulmodel.yaml" >"$WORK/nulctl.yaml"
expect_refusal nulctl "$WORK/nulctl.yaml" "$WORK/mXtail/config\.json"

echo "all hostile inputs refused"
