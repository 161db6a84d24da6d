#!/usr/bin/env bash
# Bad input of the mixture-of-experts families (issue 19, "Done when"): an expert's tensor missing
# from the safetensors files, num_experts_per_tok above the expert count, a router of the wrong
# width, a config key that changes the routing and that gptqd does not implement, a block declared
# dense (mlp_only_layers) whose file holds experts, an unknown moe.calibration, moe.min_tokens 0,
# an unknown moe.experts or moe.exchange: each gives one clear error line naming the culprit, a
# non-zero exit of the 2-rank job, and no checkpoint.
source "$(dirname "$0")/lib.bash"
make_tokens "$WORK/tokens.safetensors" 4000

# variant NAME [EDIT] [EXTRA_YAML]: the Qwen2-MoE fixture with vocab 4096 (make_moe_model.py),
# broken by EDIT (see make_moe_model.py), and its job file.
variant() {
  /usr/bin/python3 "$SRC/tests/cli/make_moe_model.py" "$SRC/tests/fixtures/moe/qwen2_moe" \
    "$WORK/$1" "${2:-}" || fail "$1: could not make the model"
  write_config "$WORK/$1.yaml" "$WORK/$1" "$WORK/$1.ckpt.h5" "${3:-}"
}

# expect_error NAME PATTERN: the job fails with one error line matching PATTERN, no file.
expect_error() {
  local name=$1 pattern=$2 rc=0
  "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/$name.yaml" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  [[ $rc -ne 0 ]] || fail "$name: exit code 0"
  local lines
  lines=$(grep -c "error:" "$WORK/$name.err" || true)
  [[ $lines -eq 1 ]] || { cat "$WORK/$name.err"; fail "$name: expected 1 error line, got $lines"; }
  grep "error:" "$WORK/$name.err" | grep -qE -- "$pattern" || { cat "$WORK/$name.err"; fail "$name: error does not match '$pattern'"; }
  [[ ! -e $WORK/$name.ckpt.h5 ]] || fail "$name: a checkpoint was written"
  echo "ok   $name: $(grep 'error:' "$WORK/$name.err" | sed 's/.*error: //')"
}

variant no-expert 'drop=model.layers.1.mlp.experts.2.up_proj.weight'
expect_error no-expert "tensor 'layers.1.mlp.experts.2.up_proj.weight' of a 2-layer qwen2_moe model is missing"
variant topk 'config=c["num_experts_per_tok"] = 4'
expect_error topk "num_experts_per_tok 4 is larger than the 3 experts \(num_experts\)"
variant router 'shape=model.layers.0.mlp.gate.weight:4,24'
expect_error router "mlp.gate.weight.*expected shape \[3, 32\], got \[4, 24\]"
variant scaling 'config=c["routed_scaling_factor"] = 2.5'
expect_error scaling "key 'routed_scaling_factor' is not known to gptqd for model_type qwen2_moe"
variant mixed 'config=c["mlp_only_layers"] = [0]'
# block 0 declared dense (a second block kind) where the file holds its experts
expect_error mixed "tensor 'layers.0.mlp.gate_proj.weight' of a 2-layer qwen2_moe model is missing"
variant calib '' "moe:
  calibration: every"
expect_error calib "moe.calibration: every is not one of routed, all"
variant mintok '' "moe:
  min_tokens: 0"
expect_error mintok "moe.min_tokens: 0 is out of range: must be >= 1"
variant placement '' "moe:
  experts: owned"
expect_error placement "moe.experts: owned is not one of sharded, replicated"
variant exchange '' "moe:
  exchange: rows"
expect_error exchange "moe.exchange: rows is not one of auto, activations, hessians"
# Control: the same model unbroken starts and completes.
variant good
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/good.yaml" >"$WORK/good.out" 2>"$WORK/good.err" ||
  { cat "$WORK/good.err"; fail "good: the unbroken model failed"; }
echo "ok   good: quantized"
echo PASS
