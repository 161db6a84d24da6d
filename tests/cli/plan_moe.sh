#!/usr/bin/env bash
# docs/plan-moe.md is what `gptqd plan` prints for DeepSeek-V3, Kimi-K2, Qwen3-235B-A22B and
# Mixtral-8x22B (scripts/make_plan_moe_doc.sh regenerates it and must reproduce it byte for
# byte), each published config.json is in configs/models/ beside its README, and bad MoE
# configs are one line with no plan printed. The figures themselves are checked against
# independent references in tests/unit/test_plan_moe.cpp (published parameter counts, the
# issue's 57 GB of expert Hessians).
source "$(dirname "$0")/lib.bash"
cd "$SRC"

for name in deepseek-v3 kimi-k2 qwen3-235b-a22b mixtral-8x22b; do
  [[ $(ls "configs/models/$name" | tr '\n' ' ') == "README.md config.json " ]] ||
    fail "configs/models/$name must hold config.json and README.md only"
done
scripts/make_plan_moe_doc.sh "$BIN" >"$WORK/plan-moe.md" || fail "make_plan_moe_doc.sh failed"
diff -u docs/plan-moe.md "$WORK/plan-moe.md" >"$WORK/diff" ||
  { head -40 "$WORK/diff"; fail "docs/plan-moe.md is stale: scripts/make_plan_moe_doc.sh build/gptqd > docs/plan-moe.md"; }
echo "ok   docs/plan-moe.md equals the plan's output ($(grep -cE '^\| [a-z0-9.-]+ \| [0-9]+ \|' docs/plan-moe.md) rows)"

# Control: a changed rate changes the figures, so the comparison above can fail.
"$BIN" plan configs/deepseek-v3.yaml --ranks 32 --disk-gbs 4 >"$WORK/fast.out" 2>&1 ||
  fail "plan --disk-gbs 4 failed"
grep -q "^one run  3.4 min" "$WORK/fast.out" && fail "control: --disk-gbs 4 did not change one run"
echo "ok   control: a faster disk changes the plan ($(grep '^one run' "$WORK/fast.out" | cut -c1-40))"

# Bad input: one line, exit 1, nothing on stdout.
mkdir -p "$WORK/bad"
sed 's/"num_experts_per_tok": 8/"num_experts_per_tok": 300/' configs/models/deepseek-v3/config.json >"$WORK/bad/config.json"
grep -q '"num_experts_per_tok": 300' "$WORK/bad/config.json" || fail "could not craft the bad config"
sed "s#configs/models/deepseek-v3#$WORK/bad#" configs/deepseek-v3.yaml >"$WORK/bad.yaml"
expect_one_error topk 1 "config.json: num_experts_per_tok 300 is more than the 256 experts" \
  "$BIN" plan "$WORK/bad.yaml" --ranks 8
