#!/usr/bin/env bash
# Bad input of the model-family layer (issue 10, "Done when"): an unsupported model_type, a
# missing tensor of the family, inconsistent head counts, an unknown rope_scaling type, a
# sequence longer than a sliding window or OPT's learned positions: each gives one clear error
# line naming the culprit, a non-zero exit of the 2-rank job, and no checkpoint.
source "$(dirname "$0")/lib.bash"
make_tokens "$WORK/tokens.safetensors" 4000

# variant NAME JQ_LIKE_PYTHON: a copy of tiny-llama whose config.json is edited by the Python
# statement(s) given (on the dict `c`), or whose safetensors loses a tensor (drop=NAME).
variant() {
  local name=$1 edit=$2
  cp -r "$SRC/models/tiny-llama" "$WORK/$name"
  /usr/bin/python3 - "$WORK/$name" "$edit" <<'PY'
import json, struct, sys
d, edit = sys.argv[1], sys.argv[2]
if edit.startswith("drop="):
    raw = open(f"{d}/model.safetensors", "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    h = json.loads(raw[8:8 + n])
    h["unused.weight"] = h.pop(edit[5:])  # renamed: its bytes stay where they were
    text = json.dumps(h).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    open(f"{d}/model.safetensors", "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
else:
    c = json.load(open(f"{d}/config.json"))
    exec(edit)
    json.dump(c, open(f"{d}/config.json", "w"))
PY
  write_config "$WORK/$name.yaml" "$WORK/$name" "$WORK/$name.ckpt.h5"
}

# expect_error NAME PATTERN: the job fails with one error line matching PATTERN, no file.
expect_error() {
  expect_one_error "$1" nonzero "$2" "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/$1.yaml"
  [[ ! -e $WORK/$1.ckpt.h5 ]] || fail "$1: a checkpoint was written"
}

variant gpt2 'c["model_type"] = "gpt2"'
expect_error gpt2 "model_type 'gpt2' is not supported \(supported: bloom, llama, mistral, qwen2, qwen3, opt, mixtral, qwen2_moe, qwen3_moe, deepseek_v3, kimi_k2\)"
variant no-q 'drop=model.layers.2.self_attn.q_proj.weight'
expect_error no-q "tensor 'layers.2.self_attn.q_proj.weight' of a 4-layer llama model is missing"
variant kv3 'c["num_key_value_heads"] = 3'
expect_error kv3 "num_attention_heads 4 is not a multiple of num_key_value_heads 3"
variant hidden 'c["hidden_size"] = 66; c.pop("head_dim", None)'
expect_error hidden "hidden_size 66 is not divisible by num_attention_heads 4"
variant yarn 'c["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}'
expect_error yarn "rope_scaling type 'yarn' is not supported"
variant window 'c["model_type"] = "mistral"; c["sliding_window"] = 16'
expect_error window "calibration.seqlen is 32 tokens, but mistral attends within a sliding window of 16 tokens"
# The lines of a good Llama run: the job starts (control: the variants failed for their defect).
variant good 'pass'
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/good.yaml" >"$WORK/good.out" 2>"$WORK/good.err" ||
  { cat "$WORK/good.err"; fail "control: the unedited copy failed"; }
echo "all bad family inputs rejected"
