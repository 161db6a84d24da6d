#!/usr/bin/env python3
"""Digest of a gptqd checkpoint's quantized data: one sha256 per run/block/layer/array.

    ckpt_digest.py FILE            prints the digest as JSON
    ckpt_digest.py FILE EXPECTED   compares with a saved digest; exit 1 naming what differs

Arrays: codes, scales, zeros, g_idx, perm, bias (their raw bytes), and each layer's stats row
without the seconds column (timing). Reads with h5py (Debian's python3-h5py).
"""
import hashlib
import json
import sys

import h5py
import numpy as np

ARRAYS = ("codes", "scales", "zeros", "g_idx", "perm", "bias")


def digest(path):
    out = {}
    with h5py.File(path, "r") as f:
        for rn, run in f["runs"].items():
            stats = run["stats"][()]
            for b, blk in run["blocks"].items():
                for li, (l, g) in enumerate(blk.items()):
                    for k in ARRAYS:
                        out[f"{rn}/{b}/{l}/{k}"] = hashlib.sha256(np.ascontiguousarray(g[k][()]).tobytes()).hexdigest()
            # stats[block, layer, column]: gptq_loss, gptq_err, rtn_err, seconds, damp
            out[f"{rn}/stats"] = hashlib.sha256(np.ascontiguousarray(stats[:, :, [0, 1, 2, 4]]).tobytes()).hexdigest()
    return out


def main():
    got = digest(sys.argv[1])
    if len(sys.argv) == 2:
        print(json.dumps(got, indent=1, sort_keys=True))
        return 0
    want = json.load(open(sys.argv[2]))
    bad = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    for k in bad[:20]:
        print(f"differs: {k}", file=sys.stderr)
    print(f"{len(got) - len(bad)}/{len(set(got) | set(want))} digests equal", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
