#!/usr/bin/env bash
# A stopped rank (SIGSTOP: what a stalled NFS mount, a hung GPU or a swapped-out node looks like)
# ends the job within parallel.stall_timeout with one line naming it; the rank left waiting
# sleeps instead of spinning; the rerun resumes and gives the uninterrupted run's checkpoint bit
# for bit (worker/transport/liveness.h).
#
# 2 ranks = 1 stage x 2 replicas on models/tiny-bloom (4 blocks, hidden 256): rank 1 waits for
# rank 0 in the replicas' collectives. Rank 0 (the replica that marks blocks complete and holds
# the checkpoint's lock) stops itself at a fixed point through a test hook, since a signal sent
# from outside lands anywhere (found by its pid; its CPU and state are read from /proc):
#  1. GPTQD_TEST_STOP_AT_BLOCK=1 (worker/stage.h): it stops as it starts block 1, where it reads
#     its weights. Rank 1 computes its share of block 1 and waits for it at the Hessian sum.
#     With stall_timeout 5 the job must end, exit != 0, within MAX_END_S of the stop with
#     exactly one stall line naming rank 0, this host and "reading its weights"; rank 1's CPU
#     time over the wait (utime + stime from /proc/PID/stat) must stay below MAX_WAIT_CPU.
#  2. GPTQD_TEST_STOP_IN_SUM=5 (worker/transport/transport_mpi.cpp): it stops inside its 5th
#     Hessian sum (block 1's first), after both replicas arrived: rank 1 then waits inside MPI's
#     blocking reduce, where no poll runs, and the liveness watchdog must end it (one line,
#     within MAX_END_S).
#  After each, the stopped rank must be gone, and the same command resumes (block 0 read
#  back) to a file equal to the uninterrupted run's.
# Controls: with stall_timeout 3600 the stop of case 1 leaves the job running at CONTROL_S (the
# end in 1 comes from the rule, not from something else ending the job); the CPU measure reads
# a busy shell loop as busy (>= MIN_BUSY_CPU), so a spinning waiter would be seen.
source "$(dirname "$0")/../cli/lib.bash"
STALL_S=5
MAX_END_S=60     # from the stop to the job's end: the timeout, a 2 s grace, slack for a busy CI
CONTROL_S=15     # three timeouts: the control job must still be running then
MAX_WAIT_CPU=10  # percent of the window a waiting rank may use (measured: 1-2%)
MIN_BUSY_CPU=25  # percent the measure must read for a busy loop (alone it reads ~100%)
GONE_S=10        # the stopped rank must be gone this long after the launcher ended
TICKS=$(getconf CLK_TCK)

make_tokens "$WORK/tokens.safetensors" 20000
job() {  # job NAME STALL_TIMEOUT: the job file $WORK/NAME.yaml
  cat >"$WORK/$1.yaml" <<YAML
model:
  path: $SRC/models/tiny-bloom
calibration:
  tokens: $WORK/tokens.safetensors
  nsamples: 16
  seqlen: 128
quant:
  bits: 4
  group_size: 32
parallel:
  stages: 1
  stall_timeout: $2
output:
  checkpoint: $WORK/$1.h5
YAML
}
job ref 5
job stall 5
job inside 5
job control 3600

# cpu_ticks PID: utime + stime of the process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# start NAME HOOK: the 2-rank job in the background with the test hook HOOK=...; waits until
# rank 0 has stopped itself; sets LAUNCHER, STOPPED (rank 0), WAITER (rank 1) and STOP_NS.
start() {
  env "$2" "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/$1.yaml" --threads 1 >"$WORK/$1.out" 2>"$WORK/$1.err" &
  LAUNCHER=$!
  local i
  STOPPED='' WAITER=''
  for ((i = 0; i < 1200; ++i)); do
    kill -0 "$LAUNCHER" 2>/dev/null || { cat "$WORK/$1.err"; fail "$1: the job ended before rank 0 stopped"; }
    [[ -n $STOPPED ]] || STOPPED=$(rank_pid "$LAUNCHER" 0) || true
    [[ -n $WAITER ]] || WAITER=$(rank_pid "$LAUNCHER" 1) || true
    [[ -n $STOPPED && -n $WAITER && $(state "$STOPPED") == T ]] && break
    sleep 0.1
  done
  [[ -n $STOPPED && $(state "$STOPPED") == T ]] || { kill "$LAUNCHER"; cat "$WORK/$1.err"; fail "$1: rank 0 did not stop ($2)"; }
  STOP_NS=$(date +%s%N)
  echo "$1: rank 0 (pid $STOPPED) stopped itself ($2); rank 1 is pid $WAITER"
}
# percent TICKS NS: CPU ticks over a wall time in ns, in percent of one core.
percent() { echo $(($1 * 100 * 1000000000 / (TICKS * $2))); }
# ended NAME: waits for the launcher of start() to end (at most MAX_END_S after the stop);
# sets RC, END_MS and WAIT_PCT (rank 1's CPU over the wait, read until it is gone).
ended() {
  local w0 w1 wt t
  w0=$(cpu_ticks "$WAITER") && w1=$w0 && wt=$STOP_NS
  while kill -0 "$LAUNCHER" 2>/dev/null; do
    if (($(date +%s%N) - STOP_NS > MAX_END_S * 1000000000)); then
      kill -KILL "$STOPPED" "$WAITER" 2>/dev/null || true
      kill "$LAUNCHER" 2>/dev/null || true
      cat "$WORK/$1.err"
      fail "$1: the job still ran ${MAX_END_S} s after rank 0 stopped (stall_timeout ${STALL_S} s)"
    fi
    if t=$(cpu_ticks "$WAITER" 2>/dev/null); then w1=$t && wt=$(date +%s%N); fi
    sleep 0.2
  done
  RC=0
  wait "$LAUNCHER" || RC=$?
  END_MS=$((($(date +%s%N) - STOP_NS) / 1000000))
  WAIT_PCT=$(percent $((w1 - w0)) $((wt - STOP_NS)))
  echo "$1: exit $RC ${END_MS} ms after the stop; rank 1 used ${WAIT_PCT}% of a core meanwhile"
  [[ $RC -ne 0 ]] || { cat "$WORK/$1.err"; fail "$1: the stalled job exited 0"; }
  # The stopped rank is gone (the launcher ends it with the job): it held the checkpoint's lock.
  # Open MPI's daemon kills it as the launcher exits; on a busy machine the kernel may take a
  # moment more to reap it (seen once: still there 1 s after, gone just after), so it has
  # GONE_S to disappear: what is checked is that it does not outlive the job, not how fast the
  # machine reaps it.
  local i
  for ((i = 0; i < GONE_S * 10; ++i)); do
    [[ -n $(state "$STOPPED") && $(state "$STOPPED") != Z ]] || break
    sleep 0.1
  done
  if [[ -n $(state "$STOPPED") && $(state "$STOPPED") != Z ]]; then
    kill -KILL "$STOPPED"
    fail "$1: the stopped rank 0 (pid $STOPPED) outlived the job by ${GONE_S} s"
  fi
  echo "$1: the stopped rank was gone $((i * 100)) ms after the launcher"
}
# one_line NAME PATTERN: exactly one line of the job's output matches PATTERN (grep -E); prints it.
one_line() {
  local n
  n=$(cat "$WORK/$1.err" "$WORK/$1.out" | grep -cE "$2" || true)
  [[ $n -eq 1 ]] || { cat "$WORK/$1.err"; fail "$1: $n lines match '$2', expected 1"; }
  LINE=$(cat "$WORK/$1.err" "$WORK/$1.out" | grep -E "$2")
  echo "$1: $LINE"
}
# resumes NAME: the same command again resumes block 0 and equals the uninterrupted run.
resumes() {
  timeout 300 "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/$1.yaml" --threads 1 >"$WORK/$1.rerun.out" 2>"$WORK/$1.rerun.err" ||
    { cat "$WORK/$1.rerun.err"; fail "$1: the rerun failed"; }
  grep -qE "^ +0 +self_attention.query_key_value .*\(resumed\)" "$WORK/$1.rerun.out" ||
    { cat "$WORK/$1.rerun.out"; fail "$1: the rerun did not resume block 0"; }
  /usr/bin/python3 - "$WORK/ref.h5" "$WORK/$1.h5" <<'PY' || fail "$1: the resumed checkpoint differs from the uninterrupted run"
import sys, h5py, numpy as np
ref = h5py.File(sys.argv[1], "r")["runs/w4g32"]
run = h5py.File(sys.argv[2], "r")["runs/w4g32"]
assert (run["complete"][()] == 1).all(), run["complete"][()]
n = 0
for b, blk in ref["blocks"].items():
    for l, g in blk.items():
        for k in ("codes", "scales", "zeros", "g_idx", "perm", "bias"):
            assert np.array_equal(g[k][()], run["blocks"][b][l][k][()]), (b, l, k)
        n += g["codes"].size
cols = [0, 1, 2, 4]  # the stats but the seconds
assert np.array_equal(ref["stats"][()][:, :, cols], run["stats"][()][:, :, cols])
print(f"rerun: all {n} codes and every array equal the uninterrupted run")
PY
}

# 0. The uninterrupted run.
timeout 300 "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/ref.yaml" --threads 1 >"$WORK/ref.out" 2>"$WORK/ref.err" ||
  { cat "$WORK/ref.err"; fail "the uninterrupted run failed"; }

# Control for the CPU measure: a busy loop reads as busy.
bash -c 'while :; do :; done' &
busy=$!
b0=$(cpu_ticks "$busy") && t0=$(date +%s%N)
sleep 2
b1=$(cpu_ticks "$busy") && t1=$(date +%s%N)
kill "$busy"
wait "$busy" 2>/dev/null || true
busy_pct=$(percent $((b1 - b0)) $((t1 - t0)))
echo "control: a busy loop used ${busy_pct}% of a core"
((busy_pct >= MIN_BUSY_CPU)) || fail "control: the CPU measure read ${busy_pct}% for a busy loop"

host=$(hostname)
# 1. Stopped while computing: the waiting rank names it.
start stall GPTQD_TEST_STOP_AT_BLOCK=1
ended stall
((WAIT_PCT <= MAX_WAIT_CPU)) || fail "rank 1 used ${WAIT_PCT}% of a core while waiting (limit ${MAX_WAIT_CPU}%)"
one_line stall "stalled: no progress|no progress for"
[[ $LINE == *"[rank 1] [error] error: rank 0 on host $host stalled: no progress for "*" s (parallel.stall_timeout: $STALL_S s); its last progress: run w4g32 block 1 of 4 (2/4 of stage 0): reading its weights. The job ends; rerun the same command to resume from the checkpoint" ]] ||
  fail "stall: the line does not name rank 0 on $host, the timeout and its last progress"
resumes stall

# 2. Stopped inside a blocking collective: the watchdog of the rank stuck there ends the job.
start inside GPTQD_TEST_STOP_IN_SUM=5
ended inside
# Rank 1's watchdog line; on a loaded machine rank 0's own watchdog may fire too once the stop
# is lifted by the launcher's kill (seen 1 run in 4 on 2 busy cores): a second line from another
# rank is allowed here, the watchdog being the fallback for stops inside a blocking MPI call.
one_line inside "\[rank 1\] \[error\] error: rank 1 on host .*: no progress for"
[[ $LINE == *"[rank 1] [error] error: rank 1 on host $host: no progress for "*" s inside the replicas' Hessian sum (MPI_Reduce, MPI_Bcast), which every rank it waits for had entered: one of them stalled in the middle of it (parallel.stall_timeout: $STALL_S s)."* ]] ||
  fail "inside: the line does not say where rank 1 waited"
resumes inside

# Control: without the rule in reach (stall_timeout 3600) the same stop leaves the job hanging.
start control GPTQD_TEST_STOP_AT_BLOCK=1
c0=$(cpu_ticks "$WAITER")
sleep "$CONTROL_S"
running=0
kill -0 "$LAUNCHER" 2>/dev/null && running=1
c1=$(cpu_ticks "$WAITER" 2>/dev/null || echo "$c0")
ctl_pct=$(percent $((c1 - c0)) $(($(date +%s%N) - STOP_NS)))
kill -KILL "$STOPPED" "$WAITER" 2>/dev/null || true
kill "$LAUNCHER" 2>/dev/null || true
wait "$LAUNCHER" 2>/dev/null || true
((running)) || { cat "$WORK/control.err"; fail "control: the job with stall_timeout 3600 ended within ${CONTROL_S} s"; }
! grep -qE "stalled: no progress|no progress for" "$WORK/control.err" || fail "control: a stall line with stall_timeout 3600"
echo "control: with stall_timeout 3600 the job still ran ${CONTROL_S} s after the stop (rank 1 at ${ctl_pct}% of a core)"
echo "stall timeout: ok"
