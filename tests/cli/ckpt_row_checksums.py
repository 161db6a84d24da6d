#!/usr/bin/env python3
"""Recomputes every row checksum of a gptqd checkpoint with python's xxhash, by the example of
docs/checkpoint-format.md ("Recomputing a checksum"), taken from the docs themselves so the
example is what gets tested.

    ckpt_row_checksums.py DOCS_MD FILE

First runs the example as a user pastes it, with the docs' file name, run and layer replaced by
FILE, its first run and self_attention.dense (it must print "N of N rows match"); then checks
the rows of every complete block of every run with the example's row_checksum. Prints
"example: ..." and "N rows of L layers match (format_version V)" and exits 0, or names the
first row that differs and exits 1. Needs h5py and xxhash (Debian's python3-h5py and
python3-xxhash).
"""
import contextlib
import io
import re
import sys

import h5py


def example(docs_path):
    text = open(docs_path).read()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def row_checksum" in b]
    if len(blocks) != 1:
        sys.exit(f"{docs_path}: expected one python example defining row_checksum, found {len(blocks)}")
    return blocks[0]


def run_pasted(code, docs_path, path, run):
    for old in ('"out/job.h5"', "runs/w4g128/"):
        if old not in code:
            sys.exit(f"{docs_path}: the example no longer names {old}")
    code = code.replace('"out/job.h5"', repr(path)).replace("runs/w4g128/", f"runs/{run}/")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, docs_path, "exec"), {})
    return out.getvalue().strip()


def main():
    docs, path = sys.argv[1], sys.argv[2]
    code = example(docs)
    with h5py.File(path, "r") as f:
        first_run = next(iter(f["runs"]))
    pasted = run_pasted(code, docs, path, first_run)
    m = re.fullmatch(r"(\d+) of (\d+) rows match", pasted)
    if not m or m.group(1) != m.group(2):
        print(f"example on {first_run}: {pasted}")
        return 1
    print(f"example: {pasted}")

    scope = {}
    exec(compile(code.split("# example")[0], docs, "exec"), scope)  # the definitions alone
    row_checksum = scope["row_checksum"]
    n_rows = n_layers = 0
    with h5py.File(path, "r") as f:
        version = int(f.attrs["format_version"])
        for rn, run in f["runs"].items():
            complete = run["complete"][()]
            for b, blk in run["blocks"].items():
                if not complete[int(b)]:
                    continue
                for ln, layer in blk.items():
                    stored = layer["checksum"][()]
                    for r in range(layer["codes"].shape[0]):
                        got = row_checksum(layer, r)
                        if got != int(stored[r]):
                            print(f"{rn}/{b}/{ln} row {r}: stored {int(stored[r]):016x}, "
                                  f"recomputed {got:016x}")
                            return 1
                        n_rows += 1
                    n_layers += 1
    print(f"{n_rows} rows of {n_layers} layers match (format_version {version})")
    return 0 if n_rows else 1


if __name__ == "__main__":
    sys.exit(main())
