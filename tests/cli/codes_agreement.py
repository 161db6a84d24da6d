#!/usr/bin/env python3
"""Fraction of identical codes between two gptqd checkpoints of the same job.

    codes_agreement.py A.h5 B.h5     prints one line per run and one for all runs:
                                     "<run> <identical> <total> <fraction>" (run "all" last)

Both files must hold the same runs, blocks and layers with codes of the same shapes (exit 1
naming the first difference otherwise). Reads with h5py (Debian's python3-h5py).
"""
import sys

import h5py
import numpy as np


def main():
    a_path, b_path = sys.argv[1], sys.argv[2]
    same_all = total_all = 0
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        if sorted(a["runs"]) != sorted(b["runs"]):
            print(f"runs differ: {sorted(a['runs'])} vs {sorted(b['runs'])}", file=sys.stderr)
            return 1
        for rn in sorted(a["runs"]):
            same = total = 0
            for blk, layers in a["runs"][rn]["blocks"].items():
                for layer, g in layers.items():
                    key = f"runs/{rn}/blocks/{blk}/{layer}/codes"
                    if key not in b:
                        print(f"missing in {b_path}: {key}", file=sys.stderr)
                        return 1
                    ca, cb = g["codes"][()], b[key][()]
                    if ca.shape != cb.shape:
                        print(f"{key}: shape {ca.shape} vs {cb.shape}", file=sys.stderr)
                        return 1
                    same += int(np.count_nonzero(ca == cb))
                    total += ca.size
            print(f"{rn} {same} {total} {same / total:.6f}")
            same_all += same
            total_all += total
    print(f"all {same_all} {total_all} {same_all / total_all:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
