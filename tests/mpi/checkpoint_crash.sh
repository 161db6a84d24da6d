#!/usr/bin/env bash
# A rank killed mid-run (SIGKILL) must end the job promptly and leave a checkpoint that opens,
# whose completion map is exactly the blocks whose data was fully written, and that resumes to a
# complete, correct file. Also: a resume with another fingerprint is refused.
set -uo pipefail

source "$(dirname "$0")/ckpt_env.bash"
MAX_SECONDS=20

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
[[ -x $WRITER ]] || fail "$WRITER is missing (build the ckpt_writer target)"
$PY -c 'import h5py' 2>/dev/null || skip "$PY cannot import h5py"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 1. Rank 1 kills itself with one block half written; rank 0 waits in a barrier meanwhile.
start=$(date +%s%N)
timeout 60 "$MPIEXEC" -np 2 "$WRITER" crash "$WORK/c.h5" "$WORK/record" >"$WORK/crash.log" 2>&1
rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
echo "crash run: exit $rc after ${elapsed_ms} ms"
[[ $rc -eq 124 ]] && { cat "$WORK/crash.log"; fail "mpirun did not end within 60 s after the kill"; }
[[ $rc -ne 0 ]] || { cat "$WORK/crash.log"; fail "mpirun exited 0 although a rank was killed"; }
((elapsed_ms <= MAX_SECONDS * 1000)) || fail "mpirun took ${elapsed_ms} ms (limit ${MAX_SECONDS} s)"
grep -qx "partial w4g4 5" "$WORK/record.1" || { cat "$WORK/crash.log"; fail "rank 1 never reached the kill"; }

# 2. The file opens; its completion map is exactly what the ranks recorded as marked (and the
#    hard-coded expectation); the complete blocks hold the right values.
$PY "$CHECK" "$WORK/c.h5" 2 crash "$WORK/record" || fail "h5py checks after the crash"
if command -v h5dump >/dev/null; then
  h5dump -H "$WORK/c.h5" >/dev/null || fail "h5dump -H cannot read the crashed checkpoint"
fi

# 3. A rank that throws with the checkpoint open must not hang the job in a collective close:
#    it unwinds, main() calls MPI_Abort, and the file is as consistent as after a kill.
start=$(date +%s%N)
timeout 60 "$MPIEXEC" -np 2 "$WRITER" crash-throw "$WORK/t.h5" "$WORK/trecord" >"$WORK/throw.log" 2>&1
rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
echo "throw run: exit $rc after ${elapsed_ms} ms"
[[ $rc -eq 124 ]] && { cat "$WORK/throw.log"; fail "the job hung after a rank threw"; }
[[ $rc -ne 0 ]] || { cat "$WORK/throw.log"; fail "mpirun exited 0 although a rank failed"; }
((elapsed_ms <= MAX_SECONDS * 1000)) || fail "mpirun took ${elapsed_ms} ms after a throw (limit ${MAX_SECONDS} s)"
grep -q "\[rank 1\] ckpt_writer: deliberate failure" "$WORK/throw.log" ||
  { cat "$WORK/throw.log"; fail "rank 1's error was not reported"; }
$PY "$CHECK" "$WORK/t.h5" 2 crash "$WORK/trecord" || fail "h5py checks after the throw"

# 4. Another job may not resume it.
timeout 60 "$MPIEXEC" -np 2 "$WRITER" resume-mismatch "$WORK/c.h5" >"$WORK/mismatch.log" 2>&1 ||
  { cat "$WORK/mismatch.log"; fail "resume with another fingerprint was not refused cleanly"; }
grep -q "refused: checkpoint .* was made for a different job: fingerprint" "$WORK/mismatch.log" ||
  { cat "$WORK/mismatch.log"; fail "the refusal does not say what differs"; }

# 5. The same job resumes it: only the missing blocks are written, and the result is complete.
timeout 120 "$MPIEXEC" -np 2 "$WRITER" resume "$WORK/c.h5" || fail "resume failed"
$PY "$CHECK" "$WORK/c.h5" 2 full || fail "h5py checks after the resume"
echo "PASS: killed or failing rank -> prompt exit, exact completion map; clean refusal; complete resume"
