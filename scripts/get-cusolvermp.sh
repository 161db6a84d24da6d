#!/usr/bin/env bash
# Fetches cuSOLVERMp, the distributed dense solver of the CUDA backend's
# parallel.factorization: distributed (worker/distributed_factor_gpu.h), from its PyPI wheel
# (pinned version, sha256-checked) and unpacks it into .whl/cusolvermp, where CMake finds it
# (GPTQD_CUSOLVERMP_ROOT). Pinned to 0.8.0, the newest that links with CUDA 13.0's NCCL 2.28.9:
# 0.9.x needs cuBLASMp >= 0.8, whose ncclPutSignal/ncclWaitSignal/ncclGetLsaDevicePointer
# (and 0.9.1's ncclCommQueryProperties) are NCCL 2.29's; 0.8.0 needs no cuBLASMp. Python's standard library only: no pip needed. Idempotent.
# scripts/build.sh runs it when it builds the CUDA backend; without network the build goes on
# without the cuSOLVERMp factorizer (CMake says so), which a CUDA job then replaces by ScaLAPACK.
# Usage: scripts/get-cusolvermp.sh [DEST]   (default .whl/cusolvermp); build.sh skips it when
# GPTQD_CUSOLVERMP_FETCH=0.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.whl/cusolvermp}
if [[ -f $dest/.complete ]]; then
  echo "get-cusolvermp: present in $dest"
  exit 0
fi
mkdir -p "$dest"
/usr/bin/env python3 - "$dest" <<'PY'
import hashlib, html, os, re, sys, urllib.parse, urllib.request, zipfile

dest = sys.argv[1]
# name, version, sha256 of the manylinux x86-64 wheel (checked 2026-12-03)
WHEELS = [
    ("nvidia-cusolvermp-cu13", "0.8.0.3126",
     "2bfa14cc9e24b6fa8d345c12e3142899b2bf11031d162f8a3f999ca453c00939"),
]
for name, version, sha in WHEELS:
    # The simple index (PEP 503): one anchor per file, its sha256 in the link's fragment.
    index = urllib.request.urlopen(f"https://pypi.org/simple/{name}/", timeout=30).read().decode()
    links = [urllib.parse.urljoin(f"https://pypi.org/simple/{name}/", html.unescape(h))
             for h in re.findall(r'href="([^"]+)"', index)]
    files = [u for u in links if u.endswith("#sha256=" + sha)]
    if not files:
        sys.exit(f"get-cusolvermp: {name} {version} on PyPI has no file with sha256 {sha}")
    url = files[0].split("#")[0]
    filename = url.rsplit("/", 1)[1]
    path = os.path.join(dest, filename)
    data = urllib.request.urlopen(url, timeout=120).read()
    got = hashlib.sha256(data).hexdigest()
    if got != sha:
        sys.exit(f"get-cusolvermp: {filename}: sha256 {got}, expected {sha}")
    with open(path, "wb") as f:
        f.write(data)
    with zipfile.ZipFile(path) as z:
        members = [m for m in z.namelist() if m.startswith("nvidia/")]
        z.extractall(dest, members)
    os.remove(path)
    print(f"get-cusolvermp: {name} {version} ({len(data) / 2**20:.1f} MiB) unpacked in {dest}")
PY
touch "$dest/.complete"
