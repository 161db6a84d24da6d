#!/usr/bin/env bash
# Stages that quantize at the same time (calibration.inputs: original, issue 21 item 2;
# worker/stage_concurrent.cpp). 2 ranks = 2 stages x 1 replica over models/tiny-bloom (4
# blocks: stage 0 holds blocks 0-1, stage 1 blocks 2-3). Rank 0 stops itself (SIGSTOP, the test
# hook GPTQD_TEST_STOP_AT_BLOCK=0 of worker/stage.h) as it starts quantizing block 0:
#  - original: stage 1 quantizes and marks blocks 2 and 3 and finishes its run while stage 0 is
#    still stopped before its first block (read from the job's log lines) (its input came from the original model's forward,
#    which stage 0 sent before quantizing anything); continued, the job ends bit-identical to
#    the same job on 1 rank;
#  - control, quantized (the sequential schedule): with the same stop, stage 1 marks nothing in
#    CONTROL_S seconds (it waits for block 1's quantized output), so the first case's result
#    comes from the schedule.
# Nothing here is timed: the first case waits for stage 1's completion, however long it takes.
source "$(dirname "$0")/../cli/lib.bash"
MAX_WAIT_S=300  # stage 1's two blocks take ~1 s; a bound so a broken schedule fails, not hangs
CONTROL_S=10

make_tokens "$WORK/tokens.safetensors" 20000
job() {  # job NAME INPUTS STAGES
  cat >"$WORK/$1.yaml" <<YAML
model:
  path: $SRC/models/tiny-bloom
calibration:
  tokens: $WORK/tokens.safetensors
  nsamples: 8
  seqlen: 64
  inputs: $2
quant:
  bits: 4
  group_size: 32
parallel:
  stages: $3
  stall_timeout: 3600
output:
  checkpoint: $WORK/$1.h5
YAML
}
# quantized NAME BLOCK: the job's log says BLOCK was quantized
quantized() { grep -qE "\[w4g32\] block $2 \(.*\) quantized in" "$WORK/$1.err"; }
start_stopped() {  # start_stopped NAME: the 2-rank job, until rank 0 has stopped itself
  GPTQD_TEST_STOP_AT_BLOCK=0 "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/$1.yaml" --threads 1 \
    >"$WORK/$1.out" 2>"$WORK/$1.err" &
  LAUNCHER=$!
  STOPPED=''
  local i
  for ((i = 0; i < MAX_WAIT_S * 10; ++i)); do
    kill -0 "$LAUNCHER" 2>/dev/null || { cat "$WORK/$1.err"; fail "$1: the job ended before rank 0 stopped"; }
    [[ -n $STOPPED ]] || STOPPED=$(rank_pid "$LAUNCHER" 0) || true
    [[ -n $STOPPED && $(state "$STOPPED") == T ]] && return 0
    sleep 0.1
  done
  kill "$LAUNCHER"
  fail "$1: rank 0 did not stop"
}
finish() {  # finish NAME: continue rank 0, the job must end well
  kill -CONT "$STOPPED"
  wait "$LAUNCHER" || { cat "$WORK/$1.err"; fail "$1: the continued job failed"; }
}

job ref original 1
"${MPIRUN[@]}" -np 1 "$BIN" quantize "$WORK/ref.yaml" --threads 1 >"$WORK/ref.out" 2>"$WORK/ref.err" ||
  { cat "$WORK/ref.err"; fail "the 1-rank run failed"; }

# 1. original: stage 1 finishes while stage 0 is stopped before block 0.
job conc original 2
start_stopped conc
for ((i = 0; i < MAX_WAIT_S * 5; ++i)); do
  grep -q "\[w4g32\] stage 1 done" "$WORK/conc.err" && break
  sleep 0.2
done
grep -q "\[w4g32\] stage 1 done" "$WORK/conc.err" || { finish conc; cat "$WORK/conc.err"; fail "stage 1 did not finish while stage 0 was stopped"; }
[[ $(state "$STOPPED") == T ]] || fail "rank 0 was not stopped throughout"
quantized conc 2 && quantized conc 3 || { finish conc; fail "stage 1's blocks 2 and 3 are not logged as quantized"; }
quantized conc 0 && fail "block 0 was quantized by a stopped rank"
echo "original: blocks 2 and 3 quantized and stage 1 done while rank 0 is stopped before block 0"
finish conc
quantized conc 0 && quantized conc 1 || fail "stage 0 did not quantize its blocks once continued"
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/ref.h5" >"$WORK/ref.json"
/usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$WORK/conc.h5" "$WORK/ref.json" ||
  fail "the concurrent 2-stage checkpoint differs from the 1-rank one"
echo "ok   stages quantized at the same time; the checkpoint equals the 1-rank run's"

# 2. Control: the sequential schedule under the same stop: stage 1 completes nothing.
job seq quantized 2
start_stopped seq
sleep "$CONTROL_S"
if quantized seq 2 || grep -q "\[w4g32\] stage 1 done" "$WORK/seq.err"; then
  finish seq
  fail "control: stage 1 quantized block 2 while stage 0 was stopped in the sequential schedule"
fi
echo "control (quantized): nothing of stage 1 quantized ${CONTROL_S} s into the stop"
finish seq
quantized seq 2 && quantized seq 3 || fail "control: stage 1 did not quantize once stage 0 went on"
echo "ok   control: the sequential schedule waits for stage 0"
