#!/usr/bin/env bash
# Prepares kit/ (git-ignored): everything a bare GPU machine needs to run scripts/gpu-check.sh.
#
#   scripts/gpu-kit.sh            # here, on Debian bookworm x86-64 with the build deps installed
#
# Environment: GPTQD_KIT_BUILD (build dir, default build-kit), GPTQD_KIT_JOBS (default nproc),
# GPTQD_KIT_SKIP_BUILD=1 (package the build dir as it is, without building).
#
# 1. A Release build of gptqd, unit_tests, gpu_tests, bench/gpu_gptq and tests/nccl_exchange in
#    build-kit/ (CUDA on, CMAKE_CUDA_ARCHITECTURES "80;90", GPTQD_CUSOLVERMP OFF; configured
#    once, then incremental).
# 2. The runtime libraries those programs and Open MPI's own programs and plugins link, taken
#    from Debian's packages: the package of every library `ldd` resolves is fetched with
#    `apt-get download` (the installed version where the archive still has it) and unpacked
#    with `dpkg -x`. Not carried: glibc (the host's), the CUDA libraries (cudart, cuBLAS,
#    cuSOLVER, NCCL: the GPU machine has its own), and Open MPI's plugins for fabrics a single
#    machine does not have (UCX, libfabric/OFI, verbs/openib, PSM), whose libraries would
#    otherwise come along. libstdc++/libgcc are carried apart (compat/) and used only where
#    the host's are too old.
# 3. kit/gptqd-kit.deb, an archive (unpacked with dpkg -x, never installed) holding bin/, deb/
#    (the packages' dpkg -x root, pruned of docs, static libs, Fortran/Java/OpenSHMEM parts),
#    compat/ and MANIFEST.txt; and kit/MANIFEST.txt: packages with versions and sha256,
#    binaries, the source commit (the build is of the working tree, uncommitted edits counted).
#
# The kit travels with the `device` tool's `run` (carry: ["kit"]) next to the tracked files,
# 64 MiB in all, so it must stay small: this script fails if tracked files + kit exceed it.
# scripts/kit/env.sh unpacks and sets the environment there (LD_LIBRARY_PATH, OPAL_PREFIX, ...).
# Proof that the kit alone suffices: scripts/gpu-kit-proof.sh (a bare Debian chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${GPTQD_KIT_BUILD:-build-kit}
kit=kit
arch=x86_64-linux-gnu
log() { echo "gpu-kit: $*" >&2; }

# ---- 1. the build --------------------------------------------------------------------------
if [[ -z "${CUDACXX:-}" ]] && ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
if [[ ! -f $build/CMakeCache.txt ]]; then
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  log "configuring $build"
  cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGPTQD_CUDA=ON \
    "-DCMAKE_CUDA_ARCHITECTURES=80;90" >/dev/null
fi
grep -q "GPTQD_CUDA:BOOL=ON" "$build/CMakeCache.txt" || { log "$build is not a CUDA build"; exit 1; }
# Without the cuSOLVERMp factorizer: its two libraries (19 MiB compressed) do not fit beside the
# tracked files and the kit in the 64 MiB a run carries (docs/gpu.md); its test reports itself
# skipped there, and a CUDA job's distributed factorization uses ScaLAPACK.
cmake -S . -B "$build" -DGPTQD_CUSOLVERMP=OFF >/dev/null
targets=(gptqd unit_tests gpu_tests gpu_gptq nccl_exchange)
if [[ ${GPTQD_KIT_SKIP_BUILD:-0} == 1 ]]; then
  log "GPTQD_KIT_SKIP_BUILD=1: packaging $build as it is"
else
  log "building ${targets[*]} (${GPTQD_KIT_JOBS:-$(nproc)} jobs)"
  cmake --build "$build" -j "${GPTQD_KIT_JOBS:-$(nproc)}" --target "${targets[@]}"
fi
bins=("$build/gptqd" "$build/tests/unit_tests" "$build/tests/gpu_tests" "$build/bench/gpu_gptq"
      "$build/tests/nccl_exchange")

# ---- 2. the Debian packages ------------------------------------------------------------------
# Open MPI's plugins for fabrics that one machine lacks; their libraries are not carried.
prune_re='mca_(pml|osc|spml|atomic|sshmem)_ucx|mca_(btl|mtl)_ofi|mca_btl_openib|mca_mtl_psm2?|libmca_common_(ucx|ofi|verbs)|mca_btl_usnic'
mpi_files=$(dpkg -L libopenmpi3 libpmix2 openmpi-bin | grep -E '\.so(\.[0-9.]+)?$|/bin/(orterun|orted|ompi_info)$' |
            grep -Ev "$prune_re" || true)
objs=("${bins[@]}")
for f in $mpi_files; do [[ -f $f && ! -L $f ]] && objs+=("$f"); done
libs=$(for o in "${objs[@]}"; do ldd "$o" 2>/dev/null; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)
if missing=$(for o in "${bins[@]}"; do ldd "$o"; done | grep "not found"); then
  log "unresolved libraries here: $missing"; exit 1
fi
declare -A pkgs=([openmpi-bin]=1 [openmpi-common]=1 [libopenmpi3]=1 [libpmix2]=1)
for l in $libs; do
  case $l in /usr/local/cuda*|/opt/*) continue ;; esac     # CUDA: the GPU machine has its own
  p=$(dpkg -S "$(readlink -f "$l")" 2>/dev/null || dpkg -S "$l" 2>/dev/null || true)
  p=${p%%:*}
  [[ -n $p ]] || { log "no Debian package owns $l"; exit 1; }
  [[ $p == libc6 ]] && continue                            # glibc: the host's
  pkgs[$p]=1
done
debs=${GPTQD_KIT_DEBS:-$build/debs}   # the downloaded packages, kept between runs
mkdir -p "$debs"
manifest=$build/MANIFEST.txt
{
  echo "gptqd device kit, made $(date -u +%FT%TZ) on $(. /etc/os-release; echo "$PRETTY_NAME") by scripts/gpu-kit.sh"
  echo "source: $(git describe --always --dirty 2>/dev/null || echo unknown) ($(git status --porcelain 2>/dev/null | wc -l) uncommitted paths)"
  echo "build: $build, Release, CUDA $(${CUDACXX:-nvcc} --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), CMAKE_CUDA_ARCHITECTURES $(sed -n 's/^CMAKE_CUDA_ARCHITECTURES:[A-Z]*=//p' "$build/CMakeCache.txt")"
  echo "not carried: glibc, CUDA (cudart, cublas, cublasLt, cusolver, cusparse, nvJitLink, nccl)"
  echo "packages (apt-get download, dpkg -x):"
} > "$manifest"
for p in $(printf '%s\n' "${!pkgs[@]}" | sort); do
  v=$(dpkg-query -W -f='${Version}' "$p")
  f=$(ls "$debs/${p}_"*.deb 2>/dev/null | head -1 || true)
  if [[ -z $f ]]; then
    (cd "$debs" && { apt-get download -q "$p=$v" >/dev/null 2>&1 || apt-get download -q "$p" >/dev/null; })
    f=$(ls "$debs/${p}_"*.deb | head -1)
  fi
  echo "  $(basename "$f")  sha256 $(sha256sum "$f" | cut -c1-16)" >> "$manifest"
done
log "${#pkgs[@]} packages in $debs"

# ---- 3. the staged tree and the archive -------------------------------------------------------
stage=$build/kit-stage
rm -rf "$stage"; mkdir -p "$stage/bin" "$stage/deb" "$stage/compat"
for p in $(printf '%s\n' "${!pkgs[@]}" | sort); do dpkg -x "$(ls "$debs/${p}_"*.deb | head -1)" "$stage/deb"; done
d=$stage/deb
rm -rf "$d/usr/share/doc" "$d/usr/share/man" "$d/usr/share/locale" "$d/usr/share/lintian" \
       "$d/usr/share/bug" "$d/usr/share/java"
find "$d" -name '*.a' -delete
find "$d" \( -name '*.so*' -o -name '*.la' \) | grep -E "$prune_re" | xargs -r rm -f
# Fortran, Java and OpenSHMEM parts of Open MPI: gptqd uses none of them.
rm -f "$d/usr/lib/$arch"/lib{mpi_mpifh,mpi_usempi,mpi_java,oshmem}*
# The C++ runtime apart: only where the host's is too old (scripts/kit/env.sh decides).
for so in "$d/usr/lib/$arch"/libstdc++.so.6* "$d/usr/lib/$arch"/libgcc_s.so.1; do
  [[ -e $so ]] && mv "$so" "$stage/compat/"
done
# mpirun is a Debian alternative (not made by dpkg -x): the plain name, relative link.
ln -sf orterun "$d/usr/bin/mpirun"
for b in "${bins[@]}"; do strip --strip-unneeded -o "$stage/bin/$(basename "$b")" "$b"; done
{
  cat "$manifest"
  echo "binaries (stripped):"
  for b in "$stage"/bin/*; do echo "  bin/$(basename "$b")  $(stat -c %s "$b") bytes"; done
} > "$stage/MANIFEST.txt"
rm -rf "$kit"; mkdir -p "$kit"
cp "$stage/MANIFEST.txt" "$kit/MANIFEST.txt"
# The archive is itself a .deb (xz inside), so that any machine with dpkg (Debian, Ubuntu; a
# minbase chroot has no xz or python) unpacks it with `dpkg -x`; scripts/kit/env.sh falls back
# to python where dpkg is missing.
mkdir -p "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: gptqd-kit
Version: 0+$(date -u +%Y%m%d%H%M%S)
Architecture: amd64
Maintainer: gptqd <gptqd@localhost>
Description: gptqd device kit (scripts/gpu-kit.sh): not for installation
 Programs in bin/, Debian runtime libraries unpacked in deb/; see MANIFEST.txt.
CONTROL
log "compressing $(du -sh "$stage" | cut -f1) (dpkg-deb, xz -9)"
dpkg-deb --root-owner-group -Zxz -z9 --build "$stage" "$kit/gptqd-kit.deb" >/dev/null

# ---- 4. the size that travels ------------------------------------------------------------------
kit_b=$(du -cb "$kit" | tail -1 | cut -f1)
tree_b=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } |
          xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "kit: $kit/ $(mib "$kit_b") (limit 60 MiB); with the working tree that travels: $(mib $((kit_b + tree_b))) (limit 64 MiB)"
if ((kit_b > 60 * 1048576 || kit_b + tree_b > 64 * 1048576)); then
  log "too large to travel"; exit 1
fi
echo "next: run(command='bash scripts/gpu-check.sh', carry=['kit'], timeout_s=600)"
