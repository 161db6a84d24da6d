#!/usr/bin/env bash
# DeepSeek-V3 end to end (issue 19 items 1 and 7): the lora_yarn fixture (MLA with q_lora_rank,
# YaRN, 9 experts in 3 groups, top-3, a shared expert; tests/fixtures/deepseek) with a
# vocabulary of 4096 (tiny-llama's tokenizer) is quantized by `gptqd` under mpirun on 1 rank and
# on 2 ranks (2 stages), and evaluated.
#   a. 1 and 2 ranks (one replica each) give the same codes, scales and statistics;
#   b. the checkpoint holds q_a, q_b, kv_a_proj_with_mqa, kv_b, o and every expert's and the
#      shared experts' gate, up and down; not the router or its correction bias;
#   c. per block the experts' calibration tokens sum to 3 x 8 x 32 (top-3);
#   d. eval prints finite original, RTN and GPTQ perplexities (export is the MoE export's, not
#      tested here);
#   e. the plain_q fixture (q_proj, top-1, 2 shared experts, biases) on 1 stage of 2 replicas
#      with act_order and moe.calibration all: every expert sees all 256 tokens;
#   f. a file whose shards also hold a multi-token-prediction layer (num_nextn_predict_layers 1:
#      block index num_hidden_layers) quantizes, that layer skipped.
source "$(dirname "$0")/lib.bash"

make_ds() {  # make_ds CASE DIR [EDIT]
  /usr/bin/python3 "$SRC/tests/cli/make_moe_model.py" "$SRC/tests/fixtures/deepseek/$1" "$2" "${3:-}" ||
    fail "could not make the $1 model"
  cp "$SRC/models/tiny-llama/tokenizer.json" "$2/"
}
make_ds lora_yarn "$WORK/model"
make_tokens "$WORK/tokens.safetensors" 4000
head -n 300 "$SRC/data/austen-eval.txt" >"$WORK/eval.txt"

# job FILE MODEL CHECKPOINT STAGES [extra quant lines]
job() {
  write_config "$1" "$2" "$3" "  group_size: 8
${5:-}parallel:
  stages: $4
eval:
  text: $WORK/eval.txt
  seqlen: 32"
  sed -i '/group_size: 32/d' "$1"
}

# a: 1 rank, then 2 ranks in 2 stages.
job "$WORK/one.yaml" "$WORK/model" "$WORK/one.h5" 1
"${MPIRUN[@]}" -np 1 "$BIN" quantize "$WORK/one.yaml" >"$WORK/one.out" 2>"$WORK/one.err" ||
  { cat "$WORK/one.err"; fail "1 rank: quantize failed"; }
job "$WORK/two.yaml" "$WORK/model" "$WORK/two.h5" 2
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/two.yaml" >"$WORK/two.out" 2>"$WORK/two.err" ||
  { cat "$WORK/two.err"; fail "2 ranks: quantize failed"; }
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/one.h5" >"$WORK/one.json" || fail "digest"
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/two.h5" "$WORK/one.json" ||
  fail "1 rank and 2 ranks (2 stages) gave different checkpoints"
echo "ok   1 rank and 2 ranks in 2 stages: the same codes, scales and statistics"

# b: the layers.
/usr/bin/python3 - "$WORK/two.h5" <<'PY' || fail "checkpoint layers"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
layers = [x.decode() if isinstance(x, bytes) else x for x in f.attrs["layers"]]
want = ["self_attn." + n for n in ("q_a_proj", "kv_a_proj_with_mqa", "q_b_proj", "kv_b_proj", "o_proj")]
want += [f"mlp.experts.{e}.{p}_proj" for e in range(9) for p in ("gate", "up", "down")]
want += [f"mlp.shared_experts.{p}_proj" for p in ("gate", "up", "down")]
assert sorted(layers) == sorted(want), sorted(set(layers) ^ set(want))
print(f"ok   {len(layers)} layers per block; the router and its correction bias are not among them")
PY

# c: the routed tokens.
for b in 0 1; do
  sum=$(grep -E "block $b calibration tokens per expert: " "$WORK/two.err" | sed -E 's/.*per expert: ([0-9 ]+);.*/\1/' | tr ' ' '\n' | awk '{s += $1} END {print s}')
  [[ $sum -eq 768 ]] || { cat "$WORK/two.err"; fail "block $b: the experts' tokens sum to '$sum', not 3 x 256"; }
done
echo "ok   the experts' calibration tokens sum to 3 x 256 per block (top-3)"

# d: eval.
"$BIN" eval "$WORK/two.yaml" >"$WORK/e.out" 2>"$WORK/e.err" || { cat "$WORK/e.err"; fail "eval failed"; }
cat "$WORK/e.out"
for method in original RTN GPTQ; do
  ppl=$(awk -v m=$method '$4 == m { print $5 }' "$WORK/e.out")
  python3 -c "import math, sys; x = float(sys.argv[1]); sys.exit(not (math.isfinite(x) and x > 1))" "$ppl" ||
    fail "eval $method row: '$ppl'"
done
echo "ok   eval rows original, RTN and GPTQ"

# e: plain_q, 1 stage of 2 replicas, act_order, every expert calibrated on every token.
make_ds plain_q "$WORK/plain"
job "$WORK/plain.yaml" "$WORK/plain" "$WORK/plain.h5" 1 "  act_order: true
moe:
  calibration: all
"
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/plain.yaml" >"$WORK/p.out" 2>"$WORK/p.err" ||
  { cat "$WORK/p.err"; fail "plain_q: quantize failed"; }
grep -q "1 stage(s) x 2 replica(s)" "$WORK/p.err" || { cat "$WORK/p.err"; fail "plain_q: not 2 replicas"; }
[[ $(grep -c "calibration tokens per expert: 256 256 256 256 256; 0 expert(s)" "$WORK/p.err") -eq 2 ]] ||
  { cat "$WORK/p.err"; fail "plain_q: the experts did not each see the 256 tokens"; }
"$BIN" inspect --verify "$WORK/plain.h5" >"$WORK/pv.out" 2>&1 || { cat "$WORK/pv.out"; fail "plain_q: inspect --verify"; }
grep -q "checksums and ranges: OK" "$WORK/pv.out" || { cat "$WORK/pv.out"; fail "plain_q: not verified"; }
"$BIN" inspect "$WORK/plain.h5" >"$WORK/pi.out" 2>&1 || { cat "$WORK/pi.out"; fail "plain_q: inspect"; }
grep -q "self_attn.q_proj" "$WORK/pi.out" || { cat "$WORK/pi.out"; fail "plain_q: no q_proj"; }
echo "ok   plain_q on 2 replicas, calibration all: 256 tokens per expert; inspect --verify OK"

# f: the second block stands for a multi-token-prediction layer: in the file, not read.
make_ds groups "$WORK/mtp" 'config=c["num_hidden_layers"] = 1; c["num_nextn_predict_layers"] = 1'
job "$WORK/mtp.yaml" "$WORK/mtp" "$WORK/mtp.h5" 1
"${MPIRUN[@]}" -np 1 "$BIN" quantize "$WORK/mtp.yaml" >"$WORK/m.out" 2>"$WORK/m.err" ||
  { cat "$WORK/m.err"; fail "mtp: quantize failed"; }
/usr/bin/python3 - "$WORK/mtp.h5" <<'PY' || fail "mtp: checkpoint"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
run = list(f["runs"].keys())[0]
blocks = sorted(f["runs"][run]["blocks"].keys())
assert blocks == ["0"], blocks
print("ok   the MTP layer's tensors (layers.1.*) are skipped: 1 block quantized")
PY
echo PASS
