#!/usr/bin/env python3
"""Compares two gptqd checkpoints of the same job (docs/checkpoint-format.md), e.g. CPU and CUDA.

  compare_ckpt.py A.h5 B.h5 [--name NAME] [--labels A B] [--eval A.eval B.eval]

Per run: the fraction of identical codes over every layer of every complete block, the largest
code difference, the largest relative difference of scales, and each file's blocks complete.
With --eval, the perplexity tables that `gptqd eval` printed for each file, side by side.
One line per figure, for scripts/gpu-check.sh's summary. Exit status 1 if the files differ in
layout or a run is incomplete; agreement itself is reported, not judged.
"""
import argparse
import re
import sys

import h5py
import numpy as np


def ppl_table(path):
    rows = {}
    pat = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(original|RTN|GPTQ)\s+([0-9.]+|nan|inf)", re.I)
    for line in open(path, encoding="utf-8", errors="replace"):
        m = pat.match(line.strip())
        if m:
            run, method = m.group(1), m.group(4)
            rows[(run if run != "-" else "", method)] = float(m.group(5))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--name", default="")
    ap.add_argument("--eval", nargs=2, metavar=("A_EVAL", "B_EVAL"))
    ap.add_argument("--labels", nargs=2, default=["a", "b"], metavar=("A", "B"))
    args = ap.parse_args()
    tag = f"{args.name}: " if args.name else ""
    ok = True
    with h5py.File(args.a, "r") as fa, h5py.File(args.b, "r") as fb:
        runs_a = [r.decode() if isinstance(r, bytes) else str(r) for r in fa.attrs["runs"]]
        runs_b = [r.decode() if isinstance(r, bytes) else str(r) for r in fb.attrs["runs"]]
        layers = [x.decode() if isinstance(x, bytes) else str(x) for x in fa.attrs["layers"]]
        if runs_a != runs_b or int(fa.attrs["n_blocks"]) != int(fb.attrs["n_blocks"]):
            print(f"{tag}layouts differ: runs {runs_a} vs {runs_b}")
            return 1
        nb = int(fa.attrs["n_blocks"])
        for run in runs_a:
            ca = fa[f"runs/{run}/complete"][()]
            cb = fb[f"runs/{run}/complete"][()]
            same = total = 0
            maxdiff = 0
            scale_rel = 0.0
            for b in range(nb):
                if not (ca[b] and cb[b]):
                    continue
                for layer in layers:
                    ga, gb = fa[f"runs/{run}/blocks/{b}/{layer}"], fb[f"runs/{run}/blocks/{b}/{layer}"]
                    qa, qb = ga["codes"][()], gb["codes"][()]
                    same += int(np.count_nonzero(qa == qb))
                    total += qa.size
                    maxdiff = max(maxdiff, int(np.max(np.abs(qa.astype(np.int16) - qb.astype(np.int16)))))
                    sa, sb = ga["scales"][()], gb["scales"][()]
                    den = np.maximum(np.abs(sa), 1e-30)
                    scale_rel = max(scale_rel, float(np.max(np.abs(sa - sb) / den)))
            frac = same / total if total else float("nan")
            print(f"{tag}run {run}: codes agree {frac:.6f} ({total - same} of {total} differ, "
                  f"max |diff| {maxdiff}), scales max rel diff {scale_rel:.2e}, "
                  f"blocks complete {int(ca.sum())}/{nb} and {int(cb.sum())}/{nb}")
            ok = ok and bool(ca.all() and cb.all())
    if args.eval:
        ta, tb = ppl_table(args.eval[0]), ppl_table(args.eval[1])
        for key in sorted(set(ta) | set(tb)):
            pa, pb = ta.get(key, float("nan")), tb.get(key, float("nan"))
            rel = (pb - pa) / pa * 100 if pa == pa and pa else float("nan")
            run, method = key
            label = f"{run} {method}".strip()
            la, lb = args.labels
            print(f"{tag}perplexity {label}: {la} {pa:.4f}  {lb} {pb:.4f}  ({rel:+.4f}%)")
        if not ta or not tb:
            print(f"{tag}perplexity: no table in {args.eval[0] if not ta else args.eval[1]}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
