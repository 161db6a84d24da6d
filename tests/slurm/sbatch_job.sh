#!/usr/bin/env bash
# A real single-node Slurm (slurmctld + slurmd + munge, Debian's packages), started
# by this test in a private configuration, runs scripts/slurm/gptqd.sbatch on the
# small model with 2 ranks through `srun --mpi=pmix`; the job's output has the
# report and the checkpoint is complete. Skipped (77) when not root or Slurm is absent.
set -euo pipefail
SRC=${GPTQD_SOURCE_DIR:?}
BIN=${GPTQD_BIN:?}
if [[ $(id -u) -ne 0 ]]; then echo "skipped: needs root to start slurmctld/slurmd"; exit 77; fi
for cmd in slurmctld slurmd sbatch munged; do
  command -v $cmd >/dev/null || { echo "skipped: $cmd not installed (scripts/install-deps.sh installs it)"; exit 77; }
done

WORK=$(mktemp -d /tmp/gptqd-slurm-XXXXXX)
host=$(hostname -s)
export SLURM_CONF=$WORK/slurm.conf
started_munge=0
cleanup() {
  [[ -f $WORK/slurmd.pid ]] && kill "$(cat "$WORK/slurmd.pid")" 2>/dev/null || true
  [[ -f $WORK/slurmctld.pid ]] && kill "$(cat "$WORK/slurmctld.pid")" 2>/dev/null || true
  if [[ $started_munge -eq 1 ]]; then pkill -f "munged.*$WORK" 2>/dev/null || true; fi
  sleep 1
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$WORK"/*.log "$WORK"/job-*.out; do [[ -f $f ]] && { echo "--- $f"; tail -30 "$f"; }; done; exit 1; }

# munge: the authentication Slurm's daemons and clients share.
if ! munge -n </dev/null >/dev/null 2>&1; then
  mkdir -p "$WORK/munge" && chmod 700 "$WORK/munge"
  [[ -f /etc/munge/munge.key ]] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; chmod 400 /etc/munge/munge.key; }
  chown root:root /etc/munge/munge.key 2>/dev/null || true
  munged --force --socket="$WORK/munge/munge.socket" --pid-file="$WORK/munge/munged.pid" \
    --log-file="$WORK/munge.log" --seed-file="$WORK/munge/seed" --key-file=/etc/munge/munge.key
  started_munge=1
  export MUNGE_SOCKET=$WORK/munge/munge.socket
  munge_socket_line="AuthInfo=socket=$WORK/munge/munge.socket"
else
  munge_socket_line=""
fi

cpus=$(nproc)
mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2))
mkdir -p "$WORK/state" "$WORK/spool"
cat >"$SLURM_CONF" <<CONF
ClusterName=gptqdtest
SlurmctldHost=$host
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
$munge_socket_line
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
SchedulerType=sched/builtin
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF

slurmctld -i -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start"
for _ in $(seq 1 30); do
  state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
  [[ $state == idle* ]] && break
  sleep 1
done
[[ $state == idle* ]] || fail "node never became idle (state '$state')"
echo "slurm: node $host idle"

# The job: a small random BLOOM, pre-tokenized calibration, 2 ranks on this node.
python3 "$SRC/scripts/make_tiny_bloom.py" "$WORK/model" --layers 2 --hidden 64 --heads 4 --vocab 512
python3 - "$WORK/tokens.safetensors" <<'PY'
import json, struct, sys, random
n = 3000
rng = random.Random(3)
data = struct.pack(f"<{n}i", *[rng.randrange(4, 512) for _ in range(n)])
h = json.dumps({"tokens": {"dtype": "I32", "shape": [n], "data_offsets": [0, len(data)]}}).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + data)
PY
cat >"$WORK/job.yaml" <<YAML
model:
  path: $WORK/model
calibration:
  tokens: $WORK/tokens.safetensors
  nsamples: 8
  seqlen: 32
quant:
  bits: 4
  group_size: 32
parallel:
  device: cpu
output:
  checkpoint: $WORK/out/ckpt.h5
YAML

cd "$WORK"
GPTQD_BIN=$BIN OMPI_MCA_btl_vader_single_copy_mechanism=none \
  sbatch --wait --nodes=1 --ntasks=2 --ntasks-per-node=2 --cpus-per-task=1 --time=5 \
  --output="$WORK/job-%j.out" "$SRC/scripts/slurm/gptqd.sbatch" "$WORK/job.yaml" >"$WORK/sbatch.log" 2>&1 ||
  fail "sbatch job failed: $(cat "$WORK/sbatch.log")"
out=$(ls "$WORK"/job-*.out)
cat "$out"
grep -q "2 ranks" "$out" || fail "the job did not run 2 tasks"
grep -q "run w4g32" "$out" || fail "no report in the job output"
grep -qE "plan.*: 2 rank\(s\) = " "$out" || fail "gptqd did not see 2 MPI ranks under srun"
/usr/bin/python3 -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r')
c = list(f['runs/w4g32/complete'][()])
assert c == [1, 1], c
print('slurm job checkpoint complete:', c)
" "$WORK/out/ckpt.h5" || fail "checkpoint incomplete"
echo "slurm: ok"
