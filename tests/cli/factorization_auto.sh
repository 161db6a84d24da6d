#!/usr/bin/env bash
# parallel.factorization: auto, the default (coordinator/factorization_auto.h). On a 1 x 2 CPU job
# over a tiny model the plan's estimate keeps the factorization replicated (its flops are
# microseconds, the distributed one's traffic is not): the log says so in one line with both
# estimates, the checkpoint's resolved config records "replicated", and the file equals an
# explicit `replicated` job's bit for bit. A job killed under `distributed` and resumed under
# `auto` goes on distributed, as its checkpoint records, and ends with the uninterrupted
# distributed job's file bit for bit.
source "$(dirname "$0")/lib.bash"

make_model "$WORK/m" --layers 4
make_tokens "$WORK/tokens.safetensors" 4000

# job NAME [FACTORIZATION]: a 1 x 2 CPU job; no factorization key when none is given.
job() {
  write_config "$WORK/$1.yaml" "$WORK/m" "$WORK/${3:-$1}.h5" "parallel:
  stages: 1
  device: cpu${2:+
  factorization: $2}"
}
quantize() {  # quantize NAME LOG [env assignments]: the 2-rank job; its exit status
  local name=$1 log=$2
  shift 2
  env "$@" timeout 300 "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/$name.yaml" --threads 1 >"$log.out" 2>"$log.err"
}
recorded() {  # recorded FILE: parallel.factorization in the checkpoint's resolved config
  /usr/bin/python3 -c "import h5py,sys,re; t=h5py.File(sys.argv[1],'r').attrs['job_config']; t=t.decode() if isinstance(t,bytes) else t; print(re.search(r'factorization: *(\w+)', t).group(1))" "$1"
}
digest() { /usr/bin/python3 "$SRC/tests/cli/ckpt_digest.py" "$@"; }

# 1. auto on a tiny model, 2 replicas: replicated, with both estimates on one line.
job auto
quantize auto "$WORK/auto" || { tail -5 "$WORK/auto.err"; fail "quantize under auto failed"; }
line=$(grep -o "factorization auto: .*" "$WORK/auto.err") || { cat "$WORK/auto.err"; fail "no factorization auto line"; }
echo "log: $line"
[[ $line =~ ^factorization\ auto:\ replicated,\ estimated\ .+\ for\ the\ job\ against\ .+\ distributed\ \(2\ replicas\ per\ stage,\ ScaLAPACK\ on\ the\ CPU\ backend\)$ ]] ||
  fail "the auto line does not name replicated with both estimates"
[[ $(grep -c "factorization auto:" "$WORK/auto.err") -eq 1 ]] || fail "the auto line is not logged once"
! grep -q "ScaLAPACK grid" "$WORK/auto.err" || fail "auto chose replicated but a ScaLAPACK grid was made"
[[ $(recorded "$WORK/auto.h5") == replicated ]] || fail "the checkpoint records $(recorded "$WORK/auto.h5"), not replicated"
echo "ok   auto: replicated, recorded in the checkpoint's resolved config"

# 2. The same as an explicit replicated job, bit for bit.
job rep replicated
quantize rep "$WORK/rep" || { tail -5 "$WORK/rep.err"; fail "quantize under replicated failed"; }
! grep -q "factorization auto:" "$WORK/rep.err" || fail "an explicit setting logged an auto decision"
grep -q "factorization replicated (parallel.factorization)$" "$WORK/rep.err" || fail "the explicit setting is not logged"
digest "$WORK/auto.h5" >"$WORK/auto.json"
digest "$WORK/rep.h5" "$WORK/auto.json" || fail "auto and replicated give different checkpoints"
echo "ok   auto and replicated: bit-identical checkpoints"

# 3. An uninterrupted distributed job, the reference for the resume below.
job dist distributed
quantize dist "$WORK/dist" || { tail -5 "$WORK/dist.err"; fail "quantize under distributed failed"; }
grep -q "factorization: distributed, once per stage on a 1 x 2 ScaLAPACK grid" "$WORK/dist.err" ||
  { cat "$WORK/dist.err"; fail "the distributed job did not use ScaLAPACK"; }
[[ $(recorded "$WORK/dist.h5") == distributed ]] || fail "the distributed checkpoint does not record it"
digest "$WORK/dist.h5" >"$WORK/dist.json"
if digest "$WORK/rep.h5" "$WORK/dist.json" >/dev/null; then
  echo "note replicated and distributed agree bit for bit on this model"
else
  echo "note replicated and distributed checkpoints differ on this model: a resume must not switch"
fi

# 4. Killed under distributed after block 1, resumed under auto: distributed again.
job kill distributed killed
quantize kill "$WORK/kill1" GPTQD_TEST_KILL_AT_BLOCK=1 && fail "the killed job exited 0"
grep -q "GPTQD_TEST_KILL_AT_BLOCK=1" "$WORK/kill1.err" || { cat "$WORK/kill1.err"; fail "the kill hook never fired"; }
job resume "" killed
quantize resume "$WORK/resume" || { tail -5 "$WORK/resume.err"; fail "the resume under auto failed"; }
grep -q "checkpoint .* (resuming)" "$WORK/resume.err" || { cat "$WORK/resume.err"; fail "the rerun did not resume"; }
grep -q "factorization distributed, as the checkpoint's earlier blocks were made" "$WORK/resume.err" ||
  { cat "$WORK/resume.err"; fail "the resume under auto did not keep the recorded factorization"; }
grep -q "ScaLAPACK grid" "$WORK/resume.err" || fail "the resume did not factorize distributed"
grep "factorization" "$WORK/resume.err" | sed 's/^.*\] //; s/^/log: /'
digest "$WORK/killed.h5" "$WORK/dist.json" || fail "the resumed checkpoint differs from the distributed one"
echo "ok   killed under distributed, resumed under auto: the uninterrupted distributed file, bit for bit"
echo "factorization auto ok"
