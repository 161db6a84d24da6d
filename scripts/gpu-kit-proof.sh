#!/usr/bin/env bash
# Proves that kit/ (scripts/gpu-kit.sh) alone runs gptqd on a machine without its libraries:
#
#   scripts/gpu-kit.sh && scripts/gpu-kit-proof.sh      # as root; opt-in, not part of ctest
#
# In a bare Debian chroot (debootstrap --variant=minbase bookworm: none of Open MPI, HDF5,
# yaml-cpp, spdlog/fmt, OpenBLAS, LAPACK, ...), holding only what the `device` tool sends (the
# tracked and untracked-not-ignored files, kit/) at this repository's path, it runs, each with
# nothing but the kit (scripts/kit/env.sh):
#   1. gptqd --help
#   2. the CPU unit tests the kit carries (unit_tests, --gtest_brief; tests that need python or
#      tools a minbase system lacks may fail: they are listed, not hidden)
#   3. the quick-start job on 2 ranks with the CPU backend: mpirun -np 2 gptqd quantize
#      configs/tiny-bloom.yaml, then gptqd inspect (and gptqd eval with GPTQD_PROOF_EVAL=1:
#      five perplexity passes, several minutes on a small machine)
#   4. scripts/gpu-check.sh, whose GPU steps must report themselves skipped (no GPU here)
# The CUDA runtime libraries gptqd links (cudart, cuBLAS/cuBLASLt, cuSOLVER, cuSPARSE,
# nvJitLink, NCCL) are copied from this machine's CUDA into the chroot's /usr/local/cuda/lib64
# for the proof only: the GPU machine has its own, and the kit does not carry them.
#
# Environment: GPTQD_PROOF_BASE (the debootstrapped base, default /var/tmp/gptqd-kit/base; made
# when missing, then reused), GPTQD_PROOF_MIRROR (default http://deb.debian.org/debian),
# GPTQD_PROOF_KEEP=1 keeps the chroot. Output: out/gpu-kit-proof/ (summary.txt and the logs).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
[[ $(id -u) -eq 0 ]] || { echo "gpu-kit-proof: needs root (debootstrap, chroot, mount)" >&2; exit 1; }
[[ -f kit/gptqd-kit.deb ]] || { echo "gpu-kit-proof: no kit/gptqd-kit.deb: run scripts/gpu-kit.sh" >&2; exit 1; }
base=${GPTQD_PROOF_BASE:-/var/tmp/gptqd-kit/base}
mirror=${GPTQD_PROOF_MIRROR:-http://deb.debian.org/debian}
out=$repo/out/gpu-kit-proof
rm -rf "$out"; mkdir -p "$out"
summary=$out/summary.txt
say() { echo "$*" | tee -a "$summary"; }

# ---- the base system ----------------------------------------------------------------------------
if [[ ! -x $base/bin/bash ]]; then
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap > "$out/apt.log" 2>&1 ||
      { echo "gpu-kit-proof: apt-get install debootstrap failed (see $out/apt.log)" >&2; exit 1; }
  fi
  say "debootstrap --variant=minbase bookworm $base $mirror"
  if ! debootstrap --variant=minbase bookworm "$base" "$mirror" > "$out/debootstrap.log" 2>&1; then
    say "FAILED: debootstrap (the mirror $mirror unreachable?): $(tail -3 "$out/debootstrap.log")"
    exit 1
  fi
fi
root=$(mktemp -d /var/tmp/gptqd-kit/proof.XXXXXX)
cleanup() {
  for m in dev/pts dev/shm dev proc sys; do umount -l "$root/$m" 2>/dev/null || true; done
  [[ ${GPTQD_PROOF_KEEP:-0} == 1 ]] || rm -rf "$root"
}
trap cleanup EXIT
cp -a "$base/." "$root/"

# It holds none of the libraries the kit carries: list any of the kit's packages it has.
kit_pkgs=$(sed -n 's/^  \([^_]*\)_.*\.deb .*/\1/p' kit/MANIFEST.txt)
have=$(chroot "$root" dpkg-query -W -f='${Package} ${Status}\n' $kit_pkgs 2>/dev/null | awk '/ installed$/ {print $1}' | tr '\n' ' ' || true)
say "chroot: $(. "$root/etc/os-release"; echo "$PRETTY_NAME") minbase, $(chroot "$root" dpkg-query -W | wc -l) packages"
say "  of the kit's $(echo $kit_pkgs | wc -w) packages the chroot has: ${have:-none} (the kit's own copies come first on LD_LIBRARY_PATH)"
for lib in libmpi.so.40 libhdf5_openmpi.so.103 libyaml-cpp.so.0.7 libspdlog.so.1.10 libopenblas.so.0 liblapack.so.3; do
  if chroot "$root" sh -c "ls /usr/lib/x86_64-linux-gnu/$lib /lib/x86_64-linux-gnu/$lib" >/dev/null 2>&1; then
    say "  FAILED: the chroot has $lib"; exit 1
  fi
done
say "  no Open MPI, HDF5, yaml-cpp, spdlog, OpenBLAS or LAPACK in it"

# What the device tool sends: tracked + untracked-not-ignored files, and the carried kit/.
mkdir -p "$root$repo"
{ git ls-files -z --cached --others --exclude-standard; printf 'kit\0'; } |
  while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
  tar -C "$repo" --null -T - -cf - | tar -C "$root$repo" -xf -
# The CUDA libraries, for the proof only.
cuda_dst=$root/usr/local/cuda/lib64
mkdir -p "$cuda_dst"
for n in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcusolver.so.12 libcusparse.so.12 \
         libnvJitLink.so.13 libnccl.so.2; do
  so=$(ls /usr/local/cuda/lib64/$n /usr/local/cuda/lib/$n /usr/local/cuda/targets/x86_64-linux/lib/$n \
          /usr/lib/x86_64-linux-gnu/$n 2>/dev/null | head -1 || true)
  [[ -n $so ]] || { say "FAILED: no $n on this machine to copy into the chroot"; exit 1; }
  cp -L "$so" "$cuda_dst/"
done
say "  copied into the chroot for the proof only: $(ls "$cuda_dst" | tr '\n' ' ')"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount -t tmpfs -o size=1g tmpfs "$root/dev/shm" 2>/dev/null || true
mount -t sysfs sys "$root/sys" 2>/dev/null || true

# ---- the steps, inside the chroot ------------------------------------------------------------------
in_chroot() {  # in_chroot LOG LIMIT SCRIPT
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
    timeout -k 10 "$2" bash -c "cd '$repo' && $3" > "$out/$1" 2>&1
}
check() {  # check NAME LOG LIMIT SCRIPT
  local t0=$SECONDS
  if in_chroot "$2" "$3" "$4"; then say "[$1] PASSED ($((SECONDS - t0)) s)"
  else say "[$1] FAILED rc=$? ($((SECONDS - t0)) s; $2): $(grep -v '^\s*$' "$out/$2" | tail -1 | cut -c1-160)"; fail=1; fi
}
fail=0
env='source scripts/kit/env.sh'
check "gptqd --help" help.log 60 "$env && kit ldd \$KIT/bin/gptqd && kit ompi_info --path all && kit gptqd --help"
check "unit tests (CPU)" unit-tests.log 900 "$env && kit unit_tests --gtest_brief=1 --gtest_color=no"
grep -E '^\[ +(PASSED|FAILED|SKIPPED) +\]|^\[  FAILED  \]' "$out/unit-tests.log" | sed 's/^/  /' | tee -a "$summary" || true
check "quick start: mpirun -np 2 gptqd quantize configs/tiny-bloom.yaml" quickstart.log 600 \
  "$env && kit_mpirun -np 2 gptqd quantize configs/tiny-bloom.yaml --restart && kit gptqd inspect out/tiny-bloom.h5"
grep -E '^total: GPTQ err|blocks complete' "$out/quickstart.log" | sed 's/^/  /' | tee -a "$summary" || true
if [[ ${GPTQD_PROOF_EVAL:-0} == 1 ]]; then  # perplexity too: minutes on a small machine
  check "quick start: mpirun -np 2 gptqd eval configs/tiny-bloom.yaml" eval.log 1200 "$env && kit_mpirun -np 2 gptqd eval configs/tiny-bloom.yaml"
  grep -E '^(-|w[0-9]).*(original|RTN|GPTQ)' "$out/eval.log" | sed 's/^/  /' | tee -a "$summary" || true
fi
check "scripts/gpu-check.sh (no GPU)" gpu-check.log 600 "OUT=/tmp/gpu-check-out bash scripts/gpu-check.sh"
mkdir -p "$out/gpu-check"; cp "$root"/tmp/gpu-check-out/* "$out/gpu-check/" 2>/dev/null || true
sed 's/^/  /' "$out/gpu-check/summary.txt" 2>/dev/null | tee -a "$summary" || true
if ! grep -q 'SKIPPED.*no GPU' "$out/gpu-check/summary.txt" 2>/dev/null ||
   grep -q 'FAILED\|TIMEOUT' "$out/gpu-check/summary.txt"; then say "  gpu-check.sh: a step failed"; fail=1; fi
((fail == 0)) && say "PROOF PASSED" || say "PROOF FAILED"
exit $fail
