#!/usr/bin/env bash
# Writes tests/fixtures/checkpoint/format2.h5: a small format_version 2 checkpoint (a random
# 2-block BLOOM, hidden 32, quantized on 2 ranks, two runs w4g-1-act and w4g16-act) whose
# checksums were computed by the hand-written xxHash64 that gptqd used before it linked
# libxxhash (commit db53eaa and earlier). tests/unit/test_checkpoint_verify.cpp reads it to show
# that files written by that code still verify; the python check of tests/cli/row_checksums.sh
# recomputes its checksums too.
#
#   scripts/make_format2_fixture.sh GPTQD_BIN [OUT]
#
# GPTQD_BIN must be a gptqd built from db53eaa (or any commit before the libxxhash change):
#   git worktree add /tmp/gptqd-db53eaa db53eaa && cmake -S /tmp/gptqd-db53eaa -B /tmp/b \
#     -DGPTQD_CUDA=OFF && cmake --build /tmp/b --target gptqd
# A newer gptqd writes the same values (same hash), but then the fixture no longer proves that.
# Needs python3 and mpirun (scripts/install-deps.sh).
set -euo pipefail
BIN=${1:?usage: make_format2_fixture.sh GPTQD_BIN [OUT]}
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${2:-$SRC/tests/fixtures/checkpoint/format2.h5}
WORK=$(mktemp -d /tmp/gptqd-format2-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

python3 "$SRC/scripts/make_tiny_bloom.py" "$WORK/m" --layers 2 --hidden 32 --heads 2 --vocab 128
python3 - "$WORK/tokens.safetensors" <<'PY'
import json, random, struct, sys
n, rng = 2000, random.Random(7)
data = struct.pack(f"<{n}i", *[rng.randrange(4, 128) for _ in range(n)])
h = json.dumps({"tokens": {"dtype": "I32", "shape": [n], "data_offsets": [0, len(data)]}}).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + data)
PY
cat >"$WORK/job.yaml" <<YAML
model:
  path: $WORK/m
calibration:
  tokens: $WORK/tokens.safetensors
  nsamples: 4
  seqlen: 16
quant:
  bits: 4
  act_order: true
sweep:
  group_size: [-1, 16]
output:
  checkpoint: $WORK/ck.h5
YAML
mpirun --oversubscribe --allow-run-as-root -np 2 "$BIN" quantize "$WORK/job.yaml" >/dev/null
mkdir -p "$(dirname "$OUT")"
cp "$WORK/ck.h5" "$OUT"
echo "wrote $OUT ($(stat -c %s "$OUT") bytes)"
