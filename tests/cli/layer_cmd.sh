#!/usr/bin/env bash
# `gptqd layer` as a user runs it: one summary line and the output tensors for a good file,
# the reference's codes on a fixture, one error line and exit 1 for bad arguments and files.
source "$(dirname "$0")/lib.bash"

FIX="$SRC/tests/fixtures/gptq"

"$BIN" layer --in "$FIX/problem_p70x200.safetensors" --out "$WORK/out.safetensors" --bits 4 \
  --group-size 128 --act-order --threads 2 >"$WORK/ok.out" 2>"$WORK/ok.err" ||
  { cat "$WORK/ok.err"; fail "good layer: non-zero exit"; }
[[ $(wc -l <"$WORK/ok.out") -eq 1 ]] || { cat "$WORK/ok.out"; fail "expected one summary line"; }
grep -qE "weight \[70, 200\], 256 tokens, w4g128-act: loss .*GPTQ .* vs RTN" "$WORK/ok.out" ||
  { cat "$WORK/ok.out"; fail "summary line"; }
echo "ok   summary: $(cat "$WORK/ok.out")"

# The output against the reference's codes for the same settings (the fixture case).
python3 - "$WORK/out.safetensors" "$FIX/case_w4_g128_act.safetensors" <<'PY' || fail "output check"
import json, struct, sys
def read(path):
    data = open(path, 'rb').read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop('__metadata__', None)
    return {k: (v['dtype'], v['shape'], data[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]])
            for k, v in header.items()}
out, ref = read(sys.argv[1]), read(sys.argv[2])
want = {'codes': ('U8', [70, 200]), 'scales': ('F32', [2, 70]), 'zeros': ('F32', [2, 70]),
        'g_idx': ('I32', [200]), 'perm': ('I32', [200]), 'dequant': ('F32', [70, 200]),
        'loss': ('F32', [1])}
for name, (dtype, shape) in want.items():
    assert out[name][:2] == (dtype, shape), (name, out[name][:2])
same = sum(a == b for a, b in zip(out['codes'][2], ref['codes'][2])) / (70 * 200)
assert same >= 0.99, same
assert out['perm'][2] == ref['perm'][2] and out['g_idx'][2] == ref['g_idx'][2]
print('ok   codes identical to the reference: %.4f' % same)
PY

# expect_error NAME PATTERN ARGS...: exit 1, one error line matching PATTERN, no output file.
expect_error() {
  local name=$1 pattern=$2
  shift 2
  rm -f "$WORK/bad.safetensors"
  expect_one_error "$name" 1 "$pattern" "$BIN" layer "$@"
  [[ ! -e $WORK/bad.safetensors ]] || fail "$name: output written"
}

GOOD=(--in "$FIX/problem_p48x80.safetensors" --out "$WORK/bad.safetensors")
expect_error bits "--bits: 5" "${GOOD[@]}" --bits 5 --group-size 128
expect_error group "--group-size: 0" "${GOOD[@]}" --bits 4 --group-size 0
expect_error damp "--damp: 2" "${GOOD[@]}" --bits 4 --group-size 128 --damp 2
expect_error static "--static-groups" "${GOOD[@]}" --bits 4 --group-size -1 --static-groups
expect_error missing "missing --bits" "${GOOD[@]}" --group-size 128
expect_error unknown "unknown option '--wbits'" "${GOOD[@]}" --wbits 4 --group-size 128
expect_error nofile "nonexistent" --in "$WORK/nonexistent.safetensors" --out "$WORK/bad.safetensors" \
  --bits 4 --group-size 128
# A tensor file without `inputs` (the indefinite fixture carries a Hessian instead).
expect_error noinputs "problem_indefinite.safetensors: no tensor 'inputs'" \
  --in "$FIX/problem_indefinite.safetensors" --out "$WORK/bad.safetensors" --bits 4 --group-size 32

# --help prints the flags and succeeds.
"$BIN" layer --help | grep -q -- "--static-groups" || fail "--help"
echo "ok   --help"
