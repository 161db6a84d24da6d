#!/usr/bin/env bash
# A stopped rank (SIGSTOP: what a stalled NFS mount, a hung GPU or a swapped-out node looks like)
# ends the job within parallel.stall_timeout with one line naming the rank, its host and its
# last progress; the rank left waiting sleeps instead of spinning; the rerun resumes and gives
# the uninterrupted run's checkpoint bit for bit (worker/transport/liveness.h).
#
# 2 ranks = 1 stage x 2 replicas on models/tiny-bloom (4 blocks, hidden 256): rank 1 waits for
# rank 0 in the replicas' collectives. Rank 0 (the replica that marks blocks complete and holds
# the checkpoint lock) is stopped once it has logged block 0, i.e. within block 1.
#  1. stall_timeout 5: the job must end with exit != 0 within MAX_END_S of the stop, with exactly
#     one stall line naming rank 0 and this host; rank 1's CPU time over the stop window
#     (utime + stime from /proc/PID/stat) must stay below MAX_WAIT_CPU of the window.
#  2. The same command resumes (block 0 read back) and the file equals the uninterrupted run's.
# Controls: with stall_timeout 3600 the same stop leaves the job running at CONTROL_S (so the
# end checked in 1 comes from the rule, not from something else ending the job); the CPU measure
# reads a busy shell loop as busy (>= MIN_BUSY_CPU), so a spinning waiter would be seen.
source "$(dirname "$0")/../cli/lib.bash"
STALL_S=5
MAX_END_S=60     # from the stop to the job's end: the timeout, a 2 s grace, slack for a busy CI
CONTROL_S=15     # three timeouts: the control job must still be running then
MAX_WAIT_CPU=10  # percent of the window a waiting rank may use (measured: 1-2%)
MIN_BUSY_CPU=25  # percent the measure must read for a busy loop (alone it reads ~100%)
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
job control 3600

# cpu_ticks PID: utime + stime of the process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# rank_pid LAUNCHER RANK: the pid of that rank among the launcher's children.
rank_pid() {
  local p
  for p in $(pgrep -P "$1"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}
# start NAME: the 2-rank job in the background; sets LAUNCHER, STOPPED (rank 0, stopped once it
# logged block 0) and WAITER (rank 1) and STOP_NS.
start() {
  "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/$1.yaml" --threads 1 >"$WORK/$1.out" 2>"$WORK/$1.err" &
  LAUNCHER=$!
  local i
  for ((i = 0; i < 600; ++i)); do
    grep -q "block 0 (1/4 of stage 0" "$WORK/$1.err" && break
    kill -0 "$LAUNCHER" 2>/dev/null || { cat "$WORK/$1.err"; fail "$1: the job ended before block 0 was logged"; }
    sleep 0.1
  done
  STOPPED=$(rank_pid "$LAUNCHER" 0) && WAITER=$(rank_pid "$LAUNCHER" 1) ||
    { kill "$LAUNCHER"; fail "$1: cannot find the ranks' pids among $(pgrep -P "$LAUNCHER" | tr '\n' ' ')"; }
  kill -STOP "$STOPPED"
  STOP_NS=$(date +%s%N)
  echo "$1: rank 0 (pid $STOPPED) stopped after block 0; rank 1 is pid $WAITER"
}
# percent TICKS NS: CPU ticks over a wall time in ns, in percent of one core.
percent() { echo $(($1 * 100 * 1000000000 / (TICKS * $2))); }

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

# 1. The stall ends the job.
start stall
w0=$(cpu_ticks "$WAITER")
rc=0
# The waiter's CPU is read just before it ends: poll until the launcher is gone.
w1=$w0 && wt=$STOP_NS
while kill -0 "$LAUNCHER" 2>/dev/null; do
  if (($(date +%s%N) - STOP_NS > MAX_END_S * 1000000000)); then
    kill -KILL "$STOPPED" 2>/dev/null || true
    kill "$LAUNCHER" 2>/dev/null || true
    cat "$WORK/stall.err"
    fail "the job still ran ${MAX_END_S} s after rank 0 was stopped (stall_timeout ${STALL_S} s)"
  fi
  if t=$(cpu_ticks "$WAITER" 2>/dev/null); then w1=$t && wt=$(date +%s%N); fi
  sleep 0.2
done
wait "$LAUNCHER" || rc=$?
end_ms=$((($(date +%s%N) - STOP_NS) / 1000000))
wait_pct=$(percent $((w1 - w0)) $((wt - STOP_NS)))
echo "stall: exit $rc ${end_ms} ms after the stop; rank 1 used ${wait_pct}% of a core while it waited"
[[ $rc -ne 0 ]] || { cat "$WORK/stall.err"; fail "the stalled job exited 0"; }
((wait_pct <= MAX_WAIT_CPU)) || fail "rank 1 used ${wait_pct}% of a core while waiting (limit ${MAX_WAIT_CPU}%)"
lines=$(grep -c "stalled: no progress" "$WORK/stall.err" "$WORK/stall.out" | awk -F: '{ s += $2 } END { print s }')
[[ $lines -eq 1 ]] || { cat "$WORK/stall.err"; fail "expected one stall line, got $lines"; }
line=$(grep "stalled: no progress" "$WORK/stall.err")
echo "stall line: $line"
host=$(hostname)
[[ $line == *"[rank 1] [error] error: rank 0 on host $host stalled: no progress for "* ]] ||
  fail "the stall line does not name rank 0 on host $host"
# Stopped just after logging block 0: in block 1, or still finishing block 0.
[[ $line == *"(parallel.stall_timeout: $STALL_S s); its last progress: run w4g32 block "[01]" of 4 ("[12]"/4 of stage 0): "[a-zA-Z]* ]] ||
  fail "the stall line does not say the timeout and rank 0's last progress in block 0 or 1"
# The stopped rank is gone (mpirun's abort kills it): it held the checkpoint's lock.
sleep 1
if kill -0 "$STOPPED" 2>/dev/null && [[ $(awk '{ print $3 }' "/proc/$STOPPED/stat") != Z ]]; then
  kill -KILL "$STOPPED"
  fail "the stopped rank 0 (pid $STOPPED) outlived the job"
fi

# 2. The rerun resumes and equals the uninterrupted run.
timeout 300 "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/stall.yaml" --threads 1 >"$WORK/rerun.out" 2>"$WORK/rerun.err" ||
  { cat "$WORK/rerun.err"; fail "the rerun after the stall failed"; }
grep -qE "^ +0 +self_attention.query_key_value .*\(resumed\)" "$WORK/rerun.out" ||
  { cat "$WORK/rerun.out"; fail "the rerun did not resume block 0"; }
/usr/bin/python3 - "$WORK/ref.h5" "$WORK/stall.h5" <<'PY' || fail "the resumed checkpoint differs from the uninterrupted run"
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

# Control: without the rule in reach (stall_timeout 3600) the same stop leaves the job hanging.
start control
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
! grep -q "stalled: no progress" "$WORK/control.err" || fail "control: a stall line with stall_timeout 3600"
echo "control: with stall_timeout 3600 the job still ran ${CONTROL_S} s after the stop (rank 1 at ${ctl_pct}% of a core)"
echo "stall timeout: ok"
