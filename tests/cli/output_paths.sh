#!/usr/bin/env bash
# The output rule (issue 20 items 1 and 3; io/files/output_path.h) as a user meets it: export
# never writes into or over its model directory, over the checkpoint it exports, or through a
# symbolic link in --out; quantize never writes through a symbolic link at <checkpoint>.lock or
# <checkpoint>.creating; layer --out is never --in; an export that fails half-way leaves --out as
# it was. Each refusal: exit code 1, one error line naming the path and why, every victim
# byte-identical (sha256) and nothing written. Each case has a control: the same command where
# writing is legitimate succeeds and the same snapshot comparison sees the change.
source "$(dirname "$0")/lib.bash"

make_model "$WORK/m"
make_tokens "$WORK/tokens.safetensors" 4000
write_config "$WORK/job.yaml" "$WORK/m" "$WORK/ck.h5"
"${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" >"$WORK/q.out" 2>"$WORK/q.err" ||
  { cat "$WORK/q.err"; fail "quantize"; }
RUN=w4g32

sum() { sha256sum "$1" | cut -d' ' -f1; }
# snapshot DIR: every entry (hidden ones too) with its type, link target and content hash.
snapshot() {
  (cd "$1" && find . -mindepth 1 -printf '%p %y %l\n' | sort &&
    find . -type f -exec sha256sum {} + | sort)
}

# expect_refusal NAME PATTERN COMMAND...: exit code 1, exactly one error line, matching PATTERN.
expect_refusal() {
  local name=$1 pattern=$2
  shift 2
  expect_one_error "$name" 1 "$pattern" "$@"
}
# expect_success NAME COMMAND...
expect_success() {
  local name=$1
  shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || { cat "$WORK/$name.err"; fail "$name: failed"; }
  echo "ok   $name: succeeded (control)"
}
ex() { "$BIN" export "$WORK/ck.h5" --run $RUN "$@"; }

# 1. export --model M --out M (issue 20 item 1): refused naming M, the model untouched.
cp -r "$WORK/m" "$WORK/M"
before=$(snapshot "$WORK/M")
expect_refusal out-is-model "export --out '$WORK/M' is the model directory '$WORK/M'" \
  ex --model "$WORK/M" --out "$WORK/M"
[[ $(snapshot "$WORK/M") == "$before" ]] || fail "out-is-model: the model directory changed"
# Spelled another way, and a directory inside the model: refused the same.
expect_refusal out-is-model-dot "export --out '$WORK/M/\.' is the model directory" \
  ex --model "$WORK/M" --out "$WORK/M/."
expect_refusal out-in-model "export --out '$WORK/M/gptq' is inside the model directory '$WORK/M'" \
  ex --model "$WORK/M" --out "$WORK/M/gptq"
[[ $(snapshot "$WORK/M") == "$before" ]] || fail "out-in-model: the model directory changed"
# Control: a copy of the model that is not the model (--model M) is overwritten by the same
# command, and the same snapshot comparison sees it.
cp -r "$WORK/m" "$WORK/M2"
before2=$(snapshot "$WORK/M2")
expect_success out-is-copy ex --model "$WORK/M" --out "$WORK/M2"
[[ $(snapshot "$WORK/M2") != "$before2" ]] || fail "control out-is-copy: the snapshot saw no change"
[[ $(snapshot "$WORK/M") == "$before" ]] || fail "out-is-copy: the model directory changed"

# 2. A config.json symlink inside --out pointing elsewhere: refused, its target untouched.
mkdir "$WORK/d-link"
printf '{"mine": true}\n' >"$WORK/victim.json"
ln -s "$WORK/victim.json" "$WORK/d-link/config.json"
victim=$(sum "$WORK/victim.json")
before=$(snapshot "$WORK/d-link")
expect_refusal config-symlink \
  "export --out '$WORK/d-link/config.json' is a symbolic link \(to '$WORK/victim.json'\): gptqd never writes through one" \
  ex --out "$WORK/d-link"
[[ $(sum "$WORK/victim.json") == "$victim" ]] || fail "config-symlink: the link's target changed"
[[ $(snapshot "$WORK/d-link") == "$before" ]] || fail "config-symlink: --out changed"
# Control: the same directory with a regular config.json: export writes it.
mkdir "$WORK/d-plain"
cp "$WORK/victim.json" "$WORK/d-plain/config.json"
expect_success config-plain ex --out "$WORK/d-plain"
[[ $(sum "$WORK/d-plain/config.json") != "$victim" ]] || fail "control config-plain: config.json not rewritten"

# 3. --out/model.safetensors is the checkpoint being exported (a hard link, a symlink).
ck=$(sum "$WORK/ck.h5")
mkdir "$WORK/d-hard" "$WORK/d-soft" "$WORK/d-copy"
ln "$WORK/ck.h5" "$WORK/d-hard/model.safetensors"
ln -s "$WORK/ck.h5" "$WORK/d-soft/model.safetensors"
expect_refusal ckpt-hardlink \
  "export --out '$WORK/d-hard/model.safetensors' is the checkpoint being exported '$WORK/ck.h5'" \
  ex --out "$WORK/d-hard"
expect_refusal ckpt-symlink \
  "export --out '$WORK/d-soft/model.safetensors' is the checkpoint being exported '$WORK/ck.h5'" \
  ex --out "$WORK/d-soft"
[[ $(sum "$WORK/ck.h5") == "$ck" ]] || fail "ckpt-*: the checkpoint changed"
[[ $(ls -A "$WORK/d-hard") == model.safetensors && $(ls -A "$WORK/d-soft") == model.safetensors ]] ||
  fail "ckpt-*: files were written into --out"
# Control: a copy of the checkpoint (another file) at that name is replaced by the export.
cp "$WORK/ck.h5" "$WORK/d-copy/model.safetensors"
expect_success ckpt-copy ex --out "$WORK/d-copy"
[[ $(sum "$WORK/d-copy/model.safetensors") != "$ck" ]] || fail "control ckpt-copy: not replaced"
[[ $(sum "$WORK/ck.h5") == "$ck" ]] || fail "ckpt-copy: the checkpoint changed"

# 4. quantize with a symbolic link at <checkpoint>.lock or <checkpoint>.creating (issue 20
# item 3): refused before anything is written, the link's target untouched.
for kind in lock creating; do
  out="$WORK/q-$kind.h5"
  write_config "$WORK/q-$kind.yaml" "$WORK/m" "$out"
  printf 'precious %s\n' "$kind" >"$WORK/victim-$kind.txt"
  ln -s "$WORK/victim-$kind.txt" "$out.$kind"
  victim=$(sum "$WORK/victim-$kind.txt")
  expect_refusal "$kind-symlink" \
    "output\.checkpoint's [a-z ]+ file '$out\.$kind' is a symbolic link \(to '$WORK/victim-$kind\.txt'\)" \
    "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/q-$kind.yaml"
  [[ $(sum "$WORK/victim-$kind.txt") == "$victim" ]] || fail "$kind-symlink: the link's target changed"
  [[ -L $out.$kind && ! -e $out ]] || fail "$kind-symlink: the link was replaced or a checkpoint written"
  # Control: the same job with a regular file there (left by a killed job) runs, and the job
  # consumes that file (the lock is removed at the end, .creating renamed into the checkpoint):
  # the comparison above would have caught a write to it.
  rm "$out.$kind"
  cp "$WORK/victim-$kind.txt" "$out.$kind"
  expect_success "$kind-regular" "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/q-$kind.yaml"
  [[ -e $out && ! -e $out.$kind ]] || fail "control $kind-regular: $out.$kind was not consumed"
done

# 5. An export that fails half-way (the last file cannot be written: File too large, from a
# RLIMIT_FSIZE below its size and SIGXFSZ ignored) leaves --out as it was: no partial file, no
# temporary file; a new --out is not left behind. generation_config.json is copied last.
cp -r "$WORK/m" "$WORK/Mg"
python3 -c "import json,sys; json.dump({'pad': 'x' * 2_000_000}, open(sys.argv[1], 'w'))" \
  "$WORK/Mg/generation_config.json"
mkdir "$WORK/d-old"
ex --model "$WORK/Mg" --out "$WORK/d-old" 2>"$WORK/old.err" || { cat "$WORK/old.err"; fail "first export"; }
rm "$WORK/d-old/generation_config.json"
printf 'stale\n' >"$WORK/d-old/config.json"
before=$(snapshot "$WORK/d-old")
(( $(stat -c %s "$WORK/d-old/model.safetensors") < 1024 * 1024 )) || fail "model.safetensors too big for the limit"
# The limit applies to every file the process writes: PMIx's shared-memory store (gds ds21) of
# the MPI singleton would exceed it, its hash store writes no file.
limited() { (trap '' XFSZ; ulimit -f 1024; export PMIX_MCA_gds=hash; exec "$@"); }
expect_refusal export-efbig "export --out: cannot write '$WORK/d-old/generation_config.json': File too large" \
  limited "$BIN" export "$WORK/ck.h5" --run $RUN --model "$WORK/Mg" --out "$WORK/d-old"
[[ $(snapshot "$WORK/d-old") == "$before" ]] || { snapshot "$WORK/d-old"; fail "export-efbig: --out changed"; }
expect_refusal export-efbig-new "cannot write '$WORK/d-new/generation_config.json': File too large" \
  limited "$BIN" export "$WORK/ck.h5" --run $RUN --model "$WORK/Mg" --out "$WORK/d-new"
[[ ! -e $WORK/d-new ]] || { ls -la "$WORK/d-new"; fail "export-efbig-new: --out was left behind"; }
# Control: without the limit the same export writes every file, and the snapshot sees it.
expect_success export-unlimited ex --model "$WORK/Mg" --out "$WORK/d-old"
[[ $(snapshot "$WORK/d-old") != "$before" ]] || fail "control export-unlimited: the snapshot saw no change"
[[ -e $WORK/d-old/generation_config.json && $(grep -c stale "$WORK/d-old/config.json" || true) -eq 0 ]] ||
  fail "control export-unlimited: files not written"
[[ -z $(find "$WORK/d-old" -name '.*gptqd-*') ]] || fail "export-unlimited: a temporary file was left"

# 6. layer --out is --in (a hard link): refused, the input untouched; control: a new path.
FIX="$SRC/tests/fixtures/gptq"
cp "$FIX/problem_p48x80.safetensors" "$WORK/layer.safetensors"
ln "$WORK/layer.safetensors" "$WORK/layer-link.safetensors"
in=$(sum "$WORK/layer.safetensors")
expect_refusal layer-out-is-in \
  "layer --out '$WORK/layer-link.safetensors' is the --in file '$WORK/layer.safetensors'" \
  "$BIN" layer --in "$WORK/layer.safetensors" --out "$WORK/layer-link.safetensors" --bits 4 --group-size 32
[[ $(sum "$WORK/layer.safetensors") == "$in" ]] || fail "layer-out-is-in: --in changed"
rm "$WORK/layer-link.safetensors"
cp "$WORK/layer.safetensors" "$WORK/layer-copy.safetensors"
expect_success layer-out-copy "$BIN" layer --in "$WORK/layer.safetensors" \
  --out "$WORK/layer-copy.safetensors" --bits 4 --group-size 32
[[ $(sum "$WORK/layer-copy.safetensors") != "$in" ]] || fail "control layer-out-copy: not replaced"
echo "all output-path cases refused, every control written"
