#!/usr/bin/env bash
# parallel.transport (docs/config-reference.md): on the CPU backend `auto` and `mpi` are the same
# MPI transport, so a 2-stage job (activations cross the stage boundary) writes bit-identical
# checkpoints with either; `nccl` where it cannot work (the CPU backend; a build without NCCL) is
# refused with one line before any work: exit code 1, no checkpoint.
source "$(dirname "$0")/lib.bash"

make_model "$WORK/m" --layers 4
make_tokens "$WORK/tokens.safetensors" 4000

# job NAME TRANSPORT [DEVICE]
job() {
  write_config "$WORK/$1.yaml" "$WORK/m" "$WORK/$1.h5" "parallel:
  stages: 2
  device: ${3:-cpu}
  transport: $2"
}

for t in auto mpi; do
  job "$t" "$t"
  "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/$t.yaml" >"$WORK/$t.out" 2>"$WORK/$t.err" ||
    { tail -5 "$WORK/$t.err"; fail "transport $t: quantize failed"; }
  grep -q "transport between stages: mpi (parallel.transport: $t)" "$WORK/$t.err" ||
    { grep transport "$WORK/$t.err"; fail "transport $t: the log does not say MPI was chosen"; }
done
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/auto.h5" >"$WORK/auto.json"
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/mpi.h5" "$WORK/auto.json" ||
  fail "transport mpi and auto give different checkpoints"
echo "ok   auto and mpi: bit-identical checkpoints ($(grep -c '/codes' "$WORK/auto.json") layers)"

# expect_refusal NAME PATTERN: the quantize of $WORK/NAME.yaml fails with one matching line.
expect_refusal() {
  expect_one_error "$1" 1 "$2" bounded "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/$1.yaml"
  no_checkpoint "$1" "$WORK/$1.h5"
}

job ncclcpu nccl cpu
expect_refusal ncclcpu "parallel.transport: nccl needs the cuda backend, but parallel.device is cpu; use auto or mpi"
if ! "$BIN" --version | grep -q cuda; then
  job ncclbuild nccl auto
  expect_refusal ncclbuild "parallel.transport: nccl, but this gptqd was built without CUDA and NCCL"
elif ! nvidia-smi -L >/dev/null 2>&1; then
  job ncclnogpu nccl auto
  expect_refusal ncclnogpu "parallel.transport: nccl needs the cuda backend, but not every rank has a CUDA device"
else
  echo "skip nccl with device auto: this build has CUDA and a GPU is visible"
fi
echo "transport choice ok"
