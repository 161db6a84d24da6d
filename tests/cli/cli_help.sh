#!/usr/bin/env bash
# The command line as a user meets it, under mpirun -np 2: every command's --help and -h print its
# usage once (rank 0) and exit 0 on every rank; `gptqd --version` prints the version and the
# backends; an unknown flag or a missing argument gives one error line and exit 1; README's
# Commands block is `gptqd --help`.
source "$(dirname "$0")/lib.bash"

run2() { "${MPIRUN[@]}" -np 2 "$BIN" "$@"; }

# --help and -h of gptqd and of each command: exit 0, the usage once, nothing on stderr.
for cmd in "" quantize eval inspect export plan layer; do
  for h in --help -h; do
    name="${cmd:-gptqd} $h"
    set +e
    # shellcheck disable=SC2086  # an empty $cmd is no word
    run2 $cmd $h >"$WORK/help.out" 2>"$WORK/help.err"
    rc=$?
    set -e
    [[ $rc -eq 0 ]] || { cat "$WORK/help.err"; fail "$name: exit code $rc"; }
    [[ ! -s $WORK/help.err ]] || { cat "$WORK/help.err"; fail "$name: wrote to stderr"; }
    n=$(grep -c "^usage:" "$WORK/help.out" || true)
    [[ $n -eq 1 ]] || { cat "$WORK/help.out"; fail "$name: usage printed $n times"; }
    if [[ -n $cmd ]]; then
      grep -q "gptqd $cmd " "$WORK/help.out" || { cat "$WORK/help.out"; fail "$name: not its usage"; }
    fi
    echo "ok   $name"
  done
done

# inspect --help looks for no file (there is none named --help here).
(cd "$WORK" && run2 inspect --help >"$WORK/inspect.out" 2>&1) || fail "inspect --help"
grep -q "^usage: gptqd inspect FILE" "$WORK/inspect.out" || { cat "$WORK/inspect.out"; fail "inspect --help text"; }
echo "ok   inspect --help reads no file"

# --version: the version of the build, then its backends.
run2 --version >"$WORK/version.out" 2>"$WORK/version.err" || fail "--version: non-zero exit"
version=$(sed -n 's/^project(gptqd VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
[[ $(head -1 "$WORK/version.out") == "gptqd $version" ]] ||
  { cat "$WORK/version.out"; fail "--version: first line is not 'gptqd $version'"; }
grep -qE "^backends: cpu(, cuda \([0-9]+ device\(s\) visible\))?$" "$WORK/version.out" ||
  { cat "$WORK/version.out"; fail "--version: no backends line"; }
[[ $(wc -l <"$WORK/version.out") -eq 2 ]] || { cat "$WORK/version.out"; fail "--version printed twice"; }
echo "ok   --version: $(tr '\n' ' ' <"$WORK/version.out")"

# expect_error NAME PATTERN ARGS...: exit 1 (mpirun reports it), one "error:" line matching
# PATTERN, nothing on stdout.
expect_error() {
  local name=$1 pattern=$2
  shift 2
  expect_one_error "$name" 1 "$pattern" run2 "$@"
  [[ ! -s $WORK/$name.out ]] || { cat "$WORK/$name.out"; fail "$name: printed to stdout"; }
}

expect_error top-unknown "gptqd: unknown option '--frobnicate'" --frobnicate
expect_error no-command "missing COMMAND"
expect_error bad-command "unknown command 'quantise'" quantise job.yaml
expect_error quantize-unknown "quantize: unknown option '--resume'" quantize job.yaml --resume
expect_error quantize-threads "--threads: 'many' is not an integer" quantize job.yaml --threads many
expect_error eval-unknown "eval: unknown option '--runs'" eval job.yaml --runs w4
expect_error eval-value "eval: --run needs a value" eval job.yaml --run
expect_error inspect-missing "inspect: missing FILE" inspect
expect_error inspect-extra "inspect: unexpected argument 'b.h5'" inspect a.h5 b.h5
expect_error plan-ranks "plan: missing --ranks N" plan job.yaml
expect_error plan-size "--gpu-mem: '80 GB' is not a size" plan job.yaml --ranks 2 --gpu-mem "80 GB"
expect_error layer-unknown "layer: unknown option '--wbits'" layer --wbits 4

# README's Commands block is what `gptqd --help` prints.
"$BIN" --help >"$WORK/usage.txt"
awk '/^## Commands/ {on = 1; next} on && /^```$/ {if (inside) exit; inside = 1; next} inside' \
  "$SRC/README.md" >"$WORK/readme.txt"
diff -u "$WORK/readme.txt" "$WORK/usage.txt" >"$WORK/readme.diff" ||
  { cat "$WORK/readme.diff"; fail "README's Commands block differs from gptqd --help"; }
echo "ok   README's Commands block is gptqd --help"
