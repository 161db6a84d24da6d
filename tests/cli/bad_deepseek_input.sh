#!/usr/bin/env bash
# Bad input of the DeepSeek-V3 family (issue 19, "Done when"): an expert's tensor missing from the
# safetensors files, num_experts_per_tok above the expert count, topk_group above n_group, a
# router or correction bias of the wrong width, dense first blocks (first_k_dense_replace), an FP8
# quantization_config: each gives one clear error line naming the culprit, a non-zero exit of the
# 2-rank job, and no checkpoint. Control: the unbroken model quantizes.
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
expect dense "first_k_dense_replace is 1: .*dense first blocks are not supported yet"
variant fp8 'config=c["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}'
expect fp8 "quantization_config: deepseek_v3 checkpoints stored quantized"
variant good
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/good.yaml" >"$WORK/good.out" 2>"$WORK/good.err" ||
  { cat "$WORK/good.err"; fail "good: the unbroken model failed"; }
echo "ok   good: quantized"
echo PASS
