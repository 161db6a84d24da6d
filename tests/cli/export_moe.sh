#!/usr/bin/env bash
# `gptqd export` of mixtures of experts (issue 19 item 6): tiny random Mixtral, Qwen2-MoE (shared
# expert and its [1, hidden] gate) and Qwen3-MoE models (tests/cli/export_moe_model.py) are
# quantized on 2 ranks and exported as gptq, gptq_v2 and compressed-tensors; an independent reader
# (tests/cli/export_moe_check.py: its own safetensors parser, h5py, the original file) checks each
# export: every expert's quantized tensors under the checkpoint's own names with the expected
# shapes, dtypes and the checkpoint's codes, the router and shared_expert_gate copied unquantized,
# and the lists the loaders read (modules_to_not_convert / modules_in_block_to_quantize, ignore).
# Mutation controls: the reader fails on an export whose router is renamed into a quantized
# layer's place, whose modules_to_not_convert loses the shared_expert_gate, and whose expert
# qweight is swapped with another expert's. --for vllm: an asymmetric MoE run and an act_order run
# whose experts Marlin's MoE kernels do not tile are refused in one line naming why, writing
# nothing; a servable run is written with a warning about the MoE WNA16 fallback.
source "$(dirname "$0")/lib.bash"
CHECK=("/usr/bin/python3" "$SRC/tests/cli/export_moe_check.py")

make_tokens "$WORK/tokens.safetensors" 4000
for c in mixtral qwen2_moe qwen3_moe; do
  /usr/bin/python3 "$SRC/tests/cli/export_moe_model.py" $c "$WORK/$c" || fail "could not make $c"
done
write_config "$WORK/qwen2_moe.yaml" "$WORK/qwen2_moe" "$WORK/qwen2_moe.h5" "sweep:
  sym: [true, false]"
write_config "$WORK/mixtral.yaml" "$WORK/mixtral" "$WORK/mixtral.h5" "  sym: true
  act_order: true"
write_config "$WORK/qwen3_moe.yaml" "$WORK/qwen3_moe" "$WORK/qwen3_moe.h5" "  sym: true"
for c in mixtral qwen2_moe qwen3_moe; do
  "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/$c.yaml" >"$WORK/$c.q.out" 2>"$WORK/$c.q.err" ||
    { cat "$WORK/$c.q.err"; fail "$c: quantize"; }
done

ex() {  # ex MODEL RUN FORMAT [args]: export to $WORK/MODEL-RUN-FORMAT, then the independent check
  local m=$1 run=$2 fmt=$3 d=$WORK/$1-$2-$3
  shift 3
  "$BIN" export "$WORK/$m.h5" --run "$run" --out "$d" --format "$fmt" "$@" 2>"$d.err" ||
    { cat "$d.err"; fail "export $m $run $fmt"; }
  echo "$m $run $fmt:"
  "${CHECK[@]}" "$d" "$WORK/$m.h5" "$run" "$WORK/$m" || fail "$m $run $fmt: the export does not read back"
}
ex qwen2_moe w4g32-sym gptq
ex qwen2_moe w4g32 gptq_v2
ex qwen2_moe w4g32-sym compressed-tensors
ex mixtral w4g32-sym-act gptq
ex qwen3_moe w4g32-sym gptq
ex qwen3_moe w4g32-sym compressed-tensors
# Mixtral: the experts also under transformers 5's (Defuser's) names, for optimum's allow list.
/usr/bin/python3 - "$WORK/mixtral-w4g32-sym-act-gptq/config.json" <<'PY' || fail "mixtral aliases"
import json, sys
allow = [m for g in json.load(open(sys.argv[1]))["quantization_config"]["modules_in_block_to_quantize"] for m in g]
for want in ("block_sparse_moe.experts.2.w1", "mlp.experts.2.gate_proj", "mlp.experts.2.up_proj", "mlp.experts.0.down_proj"):
    assert want in allow, (want, allow)
assert not any("gate.weight" in a or a.endswith(".gate") for a in allow), allow
print("ok   mixtral: experts listed as block_sparse_moe.experts.E.w1 and mlp.experts.E.gate_proj")
PY

# Mutation controls: each broken copy must fail the reader.
mutate() {  # mutate NAME PYTHON: a copy of the qwen2_moe gptq export edited by PYTHON (h: header
  # dict, c: config dict), which the reader must refuse
  local d=$WORK/mut-$1
  cp -r "$WORK/qwen2_moe-w4g32-sym-gptq" "$d"
  /usr/bin/python3 - "$d" "$2" <<'PY' || fail "mutate"
import json, struct, sys
d, edit = sys.argv[1], sys.argv[2]
raw = open(f"{d}/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
c = json.load(open(f"{d}/config.json"))
exec(edit)
t = json.dumps(h).encode()
t += b" " * ((8 - len(t) % 8) % 8)
open(f"{d}/model.safetensors", "wb").write(struct.pack("<Q", len(t)) + t + raw[8 + n:])
json.dump(c, open(f"{d}/config.json", "w"))
PY
  if "${CHECK[@]}" "$d" "$WORK/qwen2_moe.h5" w4g32-sym "$WORK/qwen2_moe" >"$d.out" 2>&1; then
    fail "mutation $1: the reader accepted it"
  fi
  echo "ok   mutation $1 refused: $(grep FAIL "$d.out")"
}
mutate router-quantized 'h["model.layers.1.mlp.gate.qweight"] = h.pop("model.layers.1.mlp.gate.weight")'
mutate not-convert-list 'c["quantization_config"]["modules_to_not_convert"] = [m for m in c["quantization_config"]["modules_to_not_convert"] if "shared_expert_gate" not in m]'
mutate experts-swapped 'a, b = "model.layers.0.mlp.experts.0.up_proj.qweight", "model.layers.0.mlp.experts.1.up_proj.qweight"; h[a], h[b] = h[b], h[a]'

# --for vllm.
expect_one_error vllm-asym nonzero "vLLM cannot serve run w4g32: asymmetric \(sym: false; vLLM's Marlin MoE" \
  "$BIN" export "$WORK/qwen2_moe.h5" --run w4g32 --out "$WORK/v-asym" --for vllm
[[ ! -e $WORK/v-asym ]] || fail "vllm-asym: wrote $WORK/v-asym"
expect_one_error vllm-actorder nonzero "vLLM cannot serve run w4g32-sym-act: act_order with experts 32x64: hidden 64 % 128 != 0.*MoE WNA16 kernels, refuses desc_act" \
  "$BIN" export "$WORK/mixtral.h5" --out "$WORK/v-act" --for vllm
[[ ! -e $WORK/v-act ]] || fail "vllm-actorder: wrote $WORK/v-act"
"$BIN" export "$WORK/qwen2_moe.h5" --run w4g32-sym --out "$WORK/v-ok" --for vllm 2>"$WORK/v-ok.err" ||
  { cat "$WORK/v-ok.err"; fail "--for vllm of a symmetric 4-bit MoE run"; }
grep -q "Marlin's MoE kernels do not tile the experts 32x64: hidden 64 % 128 != 0.*MoE WNA16" "$WORK/v-ok.err" ||
  { cat "$WORK/v-ok.err"; fail "--for vllm: no MoE WNA16 warning"; }
grep -q '"torch_dtype": "float16"' "$WORK/v-ok/config.json" || fail "--for vllm: not float16"
echo "ok   --for vllm of w4g32-sym written (float16), with the MoE WNA16 warning"
echo "PASS"
