# Sourced (bash): unpacks kit/gptqd-kit.deb (made by scripts/gpu-kit.sh) and sets up its use.
#
#   source scripts/kit/env.sh        # from the repository root
#
# Unpacks (dpkg-deb -x, else python) into $GPTQD_KIT_DIR (default /tmp/gptqd-kit; again only
# when the archive changed) and
# defines:
#   KIT          the unpacked kit: bin/ (gptqd, unit_tests, gpu_tests, gpu_gptq, nccl_exchange),
#                deb/ (Debian's packages unpacked with dpkg -x), compat/ (libstdc++, libgcc_s)
#   KIT_LD       the LD_LIBRARY_PATH for the kit's programs (not exported: python and the
#                host's tools keep their own libraries); `kit CMD...` runs CMD with it
#   kit_mpirun   Open MPI's mpirun from the kit, with the flags a root container needs
# and exports Open MPI's relocation (OPAL_PREFIX: Debian's layout under deb/usr, plugins in
# lib/x86_64-linux-gnu/openmpi/lib/openmpi3, help files in share/openmpi), PMIx's
# (its plugin path), and the MCA settings of a single machine: ob1 over self/vader/tcp,
# no single-copy mechanism (containers forbid CMA), oversubscription allowed, run as root.
# The CUDA libraries are the host's: found by the loader's cache, else in /usr/local/cuda*
# or in a pip wheel's nvidia/*/lib (appended to KIT_LD).
_kit_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
_kit_tar=${GPTQD_KIT_ARCHIVE:-$_kit_repo/kit/gptqd-kit.deb}
KIT=${GPTQD_KIT_DIR:-/tmp/gptqd-kit}
if [[ ! -f $_kit_tar ]]; then
  echo "kit: $_kit_tar is missing (make it with scripts/gpu-kit.sh, carry it with carry: [\"kit\"])" >&2
  return 1
fi
_kit_stamp=$(stat -c '%s %Y' "$_kit_tar")
if [[ ! -f $KIT/.stamp || $(cat "$KIT/.stamp") != "$_kit_stamp" ]]; then
  rm -rf "$KIT"; mkdir -p "$KIT"
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb -x "$_kit_tar" "$KIT" || return 1
  else  # no dpkg: the .deb is an ar archive whose data.tar.xz python's tarfile reads
    python3 - "$_kit_tar" "$KIT" <<'PY' || return 1
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\n", "not a .deb"
pos = 8
while pos < len(data):
    name, size = data[pos:pos + 16].decode().strip().rstrip("/"), int(data[pos + 48:pos + 58])
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(data[pos + 60:pos + 60 + size])).extractall(sys.argv[2])
        break
    pos += 60 + size + (size & 1)
PY
  fi
  echo "$_kit_stamp" > "$KIT/.stamp"
fi

_kit_lib=$KIT/deb/usr/lib/x86_64-linux-gnu
KIT_LD=$KIT/bin:$_kit_lib:$KIT/deb/lib/x86_64-linux-gnu:$_kit_lib/openblas-pthread:$_kit_lib/pmix2/lib
# The C++ runtime: the host's where it has what the binaries need, else the kit's (Debian 12).
if ! LD_LIBRARY_PATH=$KIT_LD "$KIT/bin/gptqd" --help >/dev/null 2>&1 &&
   LD_LIBRARY_PATH=$KIT_LD "$KIT/bin/gptqd" --help 2>&1 | grep -q 'GLIBCXX\|CXXABI\|libstdc\|libgcc_s'; then
  KIT_LD=$KIT_LD:$KIT/compat
fi
# The CUDA libraries: the host's. Add their directory where the loader's cache lacks them.
for _kit_so in libcudart.so.13 libcublas.so.13 libcusolver.so.12 libnccl.so.2; do
  if ! ldconfig -p 2>/dev/null | grep -q "$_kit_so"; then
    for _kit_d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
                  /usr/local/cuda-*/lib64 /usr/lib/x86_64-linux-gnu \
                  $(python3 -c 'import glob, site; print(" ".join(d for s in site.getsitepackages() for d in glob.glob(s + "/nvidia/*/lib") + glob.glob(s + "/nvidia/cu13/lib")))' 2>/dev/null); do
      if [[ -e $_kit_d/$_kit_so ]]; then
        [[ ":$KIT_LD:" == *":$_kit_d:"* ]] || KIT_LD=$KIT_LD:$_kit_d
        break
      fi
    done
  fi
done

export OPAL_PREFIX=$KIT/deb/usr
export OPAL_SYSCONFDIR=$KIT/deb/etc/openmpi
# PMIx (Debian's, outside Open MPI) ignores OPAL_PREFIX: its plugins (pcompress zlib, without
# which mpirun prints "help-pcompress.txt: No such file") are found through its MCA path.
export PMIX_MCA_mca_base_component_path=$_kit_lib/pmix2/lib/pmix
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_plm_rsh_agent=false          # one machine: mpirun never needs ssh
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export GPTQD_SOURCE_DIR=$_kit_repo

kit() { LD_LIBRARY_PATH=$KIT_LD PATH=$KIT/bin:$OPAL_PREFIX/bin:$PATH "$@"; }
kit_mpirun() { kit "$OPAL_PREFIX/bin/mpirun" --oversubscribe "$@"; }
unset _kit_tar _kit_stamp _kit_lib _kit_so _kit_d
