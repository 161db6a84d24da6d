#!/usr/bin/env bash
# Installs the Debian packages gptqd builds and tests with, only those missing.
# Idempotent: a second run installs nothing and prints nothing but a summary line.
# Usage: scripts/install-deps.sh [--python] [--fuzz]
#   --python adds what the fixture scripts need; --fuzz adds clang and libFuzzer (scripts/fuzz.sh)
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config
  openmpi-bin libopenmpi-dev            # the MPI job (Open MPI 4.1)
  libhdf5-openmpi-dev hdf5-tools        # parallel HDF5 checkpoint + h5dump
  libxxhash-dev                         # the checkpoint's checksums (XXH3, XXH64; 0.8+)
  libyaml-cpp-dev                       # job config
  libspdlog-dev                         # logging
  libcli11-dev                          # command-line parsing (header-only)
  nlohmann-json3-dev                    # safetensors header, config.json, tokenizer.json
  libopenblas-dev liblapacke-dev        # CPU backend
  libscalapack-openmpi-dev              # parallel.factorization: distributed (ScaLAPACK + BLACS)
  libgtest-dev                          # unit tests
  python3 python3-numpy python3-h5py-mpi python3-xxhash  # checkpoint checks in tests (h5py, xxhash)
  slurmctld slurmd slurm-client munge   # the Slurm test starts a real single-node Slurm
)
for opt in "$@"; do
  case $opt in
    --python) pkgs+=(python3-torch python3-venv python3-pip) ;;
    --fuzz) pkgs+=(clang libclang-rt-dev llvm) ;;  # llvm: llvm-symbolizer for sanitizer traces
    *) echo "install-deps: unknown option $opt (--python, --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
