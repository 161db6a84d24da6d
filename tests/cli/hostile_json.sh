#!/usr/bin/env bash
# Hostile JSON in model files (issue 14, item 5, and what tests/fuzz found): a number beyond
# double's range (1e400) or nesting deeper than 64 levels in config.json or a safetensors header
# is refused before any work with one error line naming the file, the key and the value, exit
# code 1, no checkpoint written.
source "$(dirname "$0")/lib.bash"

make_model "$WORK/m"
make_tokens "$WORK/tokens.safetensors" 4000

# expect_refusal NAME MODEL_DIR PATTERN: quantize of a job on MODEL_DIR exits 1 with one error
# line matching PATTERN and writes no checkpoint.
expect_refusal() {
  write_config "$WORK/$1.yaml" "$2" "$WORK/$1.h5"
  BOUND_SECONDS=60 expect_one_error "$1" 1 "$3" bounded "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/$1.yaml"
  no_checkpoint "$1" "$WORK/$1.h5"
}

# edit_config NAME PYTHON: a copy of the model whose config.json dict `c` PYTHON changes; the
# file is written with the number text as given (json.dump cannot write 1e400).
edit_config() {
  rm -rf "$WORK/$1"
  cp -r "$WORK/m" "$WORK/$1"
  python3 - "$WORK/$1/config.json" "$2" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
exec(sys.argv[2])
open(p, "w").write(json.dumps(c).replace('"@1e400"', "1e400").replace('"@-1E999"', "-1E999"))
PY
}

edit_config top 'c["layer_norm_epsilon"] = "@1e400"'
expect_refusal top "$WORK/top" \
  "top/config.json: number 1e400 at key 'layer_norm_epsilon' is out of range"
edit_config nested 'c["extra"] = {"list": [1, "@-1E999"]}'
expect_refusal nested "$WORK/nested" \
  "nested/config.json: number -1E999 at key 'extra.list\[1\]' is out of range"
edit_config deep 'c["deep"] = eval("[" * 100 + "]" * 100)'
expect_refusal deep "$WORK/deep" "deep/config.json: JSON nested deeper than 64 levels at key 'deep\[0\]"

# The same in a safetensors header: a tensor's data_offsets.
rm -rf "$WORK/st" && cp -r "$WORK/m" "$WORK/st"
python3 - "$WORK/st/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = open(p, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
name = next(k for k in h if k != "__metadata__")
h[name]["data_offsets"][1] = "@1e400"
t = json.dumps(h).replace('"@1e400"', "1e400").encode()
t += b" " * (-len(t) % 8)
open(p, "wb").write(struct.pack("<Q", len(t)) + t + b[8 + n:])
PY
expect_refusal st "$WORK/st" \
  "model.safetensors: header: number 1e400 at key '.*data_offsets\[1\]' is out of range"
echo "all hostile JSON refused"
