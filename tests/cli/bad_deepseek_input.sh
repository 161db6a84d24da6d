#!/usr/bin/env bash
# Bad input of the DeepSeek-V3 family (issue 19, "Done when"): an expert's tensor missing from the
# safetensors files, num_experts_per_tok above the expert count, topk_group above n_group, a
# router or correction bias of the wrong width, a dense first block (first_k_dense_replace) whose
# file holds experts, a bad FP8 quantization_config; and of its FP8 checkpoints
# (tests/fixtures/deepseek/fp8: e4m3 weights with block scales): a block scale of the wrong shape,
# a missing scale, a scale beside a weight that is not FP8, an FP8 weight that
# modules_to_not_convert keeps unquantized, a linear stored unquantized that it does not list (the
# groups fixture in F32 under an FP8 config), a weight_block_size the scales do not fit, static
# activation scales. Each gives one clear error line naming the culprit, a non-zero exit of the
# 2-rank job, and no checkpoint. Controls: the unbroken model and the unbroken FP8 model quantize.
source "$(dirname "$0")/lib.bash"
make_tokens "$WORK/tokens.safetensors" 4000

variant() {  # variant NAME [EDIT]
  /usr/bin/python3 "$SRC/tests/cli/make_moe_model.py" "$SRC/tests/fixtures/deepseek/groups" \
    "$WORK/$1" "${2:-}" || fail "$1: could not make the model"
  write_config "$WORK/$1.yaml" "$WORK/$1" "$WORK/$1.ckpt.h5"
}
expect() {  # expect NAME PATTERN
  expect_one_error "$1" nonzero "$2" "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/$1.yaml"
  no_checkpoint "$1" "$WORK/$1.ckpt.h5"
}

variant no-expert 'drop=model.layers.1.mlp.experts.5.down_proj.weight'
expect no-expert "tensor 'layers.1.mlp.experts.5.down_proj.weight' of a 2-layer deepseek_v3 model is missing"
variant topk 'config=c["num_experts_per_tok"] = 9'
expect topk "num_experts_per_tok 9 is larger than the 8 experts"
variant groups 'config=c["topk_group"] = 5'
expect groups "topk_group 5 must be between 1 and n_group 4"
variant router 'shape=model.layers.0.mlp.gate.weight:16,16'
expect router "mlp.gate.weight.*expected shape \[8, 32\], got \[16, 16\]"
variant bias 'shape=model.layers.1.mlp.gate.e_score_correction_bias:2,4'
expect bias "e_score_correction_bias.*expected shape \[8\], got \[2, 4\]"
variant dense 'config=c["first_k_dense_replace"] = 1'
expect dense "tensor 'layers.0.mlp.gate_proj.weight' of a 2-layer deepseek_v3 model is missing"
variant fp8 'config=c["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}'
expect fp8 "tensor 'model.layers.0.self_attn.q_a_proj.weight' is stored as F32, but config.json's quantization_config \(quant_method fp8\) stores every linear in F8_E4M3"
variant fp8-config 'config=c["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128]}'
expect fp8-config "quantization_config.weight_block_size is '\[128\]'"

# fp8_variant NAME [EDIT]: the FP8 fixture with a 4096-token embedding (bf16), broken by EDIT:
# drop=NAME (renamed away), shape=NAME:A,B (header only), add=NAME:A,B (a new F32 tensor of ones),
# config=PYTHON (run on the config dict c).
fp8_variant() {
  /usr/bin/python3 - "$SRC/tests/fixtures/deepseek/fp8" "$WORK/$1" "${2:-}" <<'PY' ||
import json, os, struct, sys
import numpy as np
src, dst, edit = sys.argv[1:4]
os.makedirs(dst)
raw = open(os.path.join(src, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
header.pop("__metadata__", None)
t = {k: [h["dtype"], h["shape"], raw[8 + n + h["data_offsets"][0]:8 + n + h["data_offsets"][1]]]
     for k, h in header.items()}
emb = np.random.default_rng(5).normal(0, 0.25, (4096, 32)).astype(np.float32)
t["model.embed_tokens.weight"] = ["BF16", [4096, 32], (emb.view(np.uint32) >> 16).astype(np.uint16).tobytes()]
if edit.startswith("drop="):
    t["unused.weight"] = t.pop(edit[5:])
if edit.startswith("shape=") or edit.startswith("add="):
    name, dims = edit.split("=", 1)[1].split(":")
    shape = [int(d) for d in dims.split(",")]
    if edit.startswith("add="):
        t[name] = ["F32", shape, np.ones(shape, np.float32).tobytes()]
    t[name][1] = shape
out, off, blobs = {}, 0, []
for k, (dt, shape, b) in t.items():
    out[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(out).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(os.path.join(dst, "model.safetensors"), "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
c = json.load(open(os.path.join(src, "config.json")))
c["vocab_size"] = 4096
if edit.startswith("config="):
    exec(edit[7:])
json.dump(c, open(os.path.join(dst, "config.json"), "w"), indent=2)
PY
    fail "$1: could not make the model"
  write_config "$WORK/$1.yaml" "$WORK/$1" "$WORK/$1.ckpt.h5"
}

fp8_variant fp8-scale-shape 'shape=model.layers.0.self_attn.q_proj.weight_scale_inv:9,1'
expect fp8-scale-shape "FP8 block scale 'model.layers.0.self_attn.q_proj.weight_scale_inv': expected shape \[3, 3\] .*got \[9, 1\]"
fp8_variant fp8-no-scale 'drop=model.layers.1.mlp.experts.2.up_proj.weight_scale_inv'
expect fp8-no-scale "tensor 'model.layers.1.mlp.experts.2.up_proj.weight' is stored as F8_E4M3 but its block scale '.*weight_scale_inv' is missing"
fp8_variant fp8-extra-scale 'add=model.layers.0.mlp.gate.weight_scale_inv:1,3'
expect fp8-extra-scale "tensor 'model.layers.0.mlp.gate.weight' is stored as BF16, yet .* holds a block scale"
fp8_variant fp8-kept 'config=c["quantization_config"]["modules_to_not_convert"].append("model.layers.0.self_attn")'
expect fp8-kept "tensor 'model.layers.0.self_attn.*' is stored as F8_E4M3, but quantization_config.modules_to_not_convert keeps module"
fp8_variant fp8-block 'config=c["quantization_config"]["weight_block_size"] = [16, 16]'
expect fp8-block "FP8 block scale '.*weight_scale_inv': expected shape .* in blocks of 16 x 16"
fp8_variant fp8-static 'config=c["quantization_config"]["activation_scheme"] = "static"'
expect fp8-static "quantization_config.activation_scheme is 'static'"
fp8_variant fp8-good
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/fp8-good.yaml" >"$WORK/fp8-good.out" 2>"$WORK/fp8-good.err" ||
  { cat "$WORK/fp8-good.err"; fail "fp8-good: the unbroken FP8 model failed"; }
echo "ok   fp8-good: quantized"
variant good
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/good.yaml" >"$WORK/good.out" 2>"$WORK/good.err" ||
  { cat "$WORK/good.err"; fail "good: the unbroken model failed"; }
echo "ok   good: quantized"
echo PASS
