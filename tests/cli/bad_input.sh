#!/usr/bin/env bash
# Every kind of bad input gives one clear error line naming the culprit, a non-zero
# exit from the 2-rank job, and no output file (issue: foundation, "Done when").
source "$(dirname "$0")/lib.bash"

make_model "$WORK/good"
make_tokens "$WORK/tokens.safetensors" 4000

# expect_error NAME CONFIG PATTERN: the job fails, its one error line matches PATTERN.
expect_error() {
  expect_one_error "$1" nonzero "$3" "${MPIRUN[@]}" -np 2 "$BIN" quantize "$2"
  [[ ! -e $WORK/$1.ckpt.h5 ]] || fail "$1: output file $WORK/$1.ckpt.h5 was written"
}

for case in truncated header-past-end overlap shape-mismatch missing-tensor missing-config-key; do
  python3 "$SRC/tests/cli/craft_model.py" "$WORK/good" "$WORK/$case" "$case"
  write_config "$WORK/$case.yaml" "$WORK/$case" "$WORK/$case.ckpt.h5"
done
expect_error truncated "$WORK/truncated.yaml" "model.safetensors"
expect_error header-past-end "$WORK/header-past-end.yaml" "model.safetensors.*header"
expect_error overlap "$WORK/overlap.yaml" "model.safetensors.*(overlap|contiguous|gap)"
expect_error shape-mismatch "$WORK/shape-mismatch.yaml" "h.0.self_attention.dense.weight"
expect_error missing-tensor "$WORK/missing-tensor.yaml" "h.1.mlp.dense_4h_to_h.weight"
expect_error missing-config-key "$WORK/missing-config-key.yaml" "config.json.*n_head"

# YAML problems, each naming file:line:col and the key.
write_config "$WORK/syntax.yaml" "$WORK/good" "$WORK/syntax.ckpt.h5"
printf 'quant:\n  bits: [4\n' >>"$WORK/syntax.yaml"
expect_error syntax "$WORK/syntax.yaml" "syntax.yaml:[0-9]+:[0-9]+"
write_config "$WORK/unknown.yaml" "$WORK/good" "$WORK/unknown.ckpt.h5" "  bitz: 4"
expect_error unknown "$WORK/unknown.yaml" "unknown.yaml:[0-9]+:[0-9]+.*bitz"
sed 's/bits: 4/bits: 5/' "$WORK/unknown.yaml" | grep -v bitz | sed "s#unknown.ckpt#bits5.ckpt#" >"$WORK/bits5.yaml"
expect_error bits5 "$WORK/bits5.yaml" "bits5.yaml:[0-9]+:[0-9]+.*quant.bits.*5"
echo "all bad-input cases rejected"
