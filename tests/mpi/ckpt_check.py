"""Checks a checkpoint written by tests/mpi/ckpt_writer with h5py, value by value.

usage: ckpt_check.py FILE WORLD MODE [RECORD]
  WORLD  number of ranks that wrote the data (block ownership and the bias depend on it)
  MODE   parallel | crash | full: which blocks must be complete (see ckpt_writer.cpp)
  RECORD with crash: the prefix of the per-rank record files "marked <run> <block>"

The formulas repeat those of ckpt_writer.cpp's make_layer(); the format checks follow
docs/checkpoint-format.md. Exits non-zero with a message on the first mismatch.
"""
import glob
import json
import sys

import h5py
import numpy as np

N_BLOCKS = 7
LAYERS = [("self_attention.query_key_value", 12, 10), ("self_attention.dense", 5, 8),
          ("mlp.dense_h_to_4h", 9, 6)]
RUNS = [dict(name="w4g4", bits=4, group_size=4, sym=False, act_order=True, static_groups=False,
             true_sequential=True, damp_percent=0.01, block_size=128, mse_clip=False),
        dict(name="w8gall", bits=8, group_size=-1, sym=True, act_order=False, static_groups=False,
             true_sequential=True, damp_percent=0.1, block_size=128, mse_clip=False)]
EXPECTED_COMPLETE = {
    "parallel": {"w4g4": set(range(7)), "w8gall": {0, 1, 2, 6}},
    "crash": {"w4g4": {0, 1, 2, 3, 4}, "w8gall": set()},
    "full": {"w4g4": set(range(7)), "w8gall": set(range(7))},
}


def fail(msg):
    print("ckpt_check: FAIL: " + msg)
    sys.exit(1)


def expect(cond, msg):
    if not cond:
        fail(msg)


def groups(run, cols):
    return 1 if run["group_size"] == -1 else -(-cols // run["group_size"])


def writer_of_rows(b, rows, world):
    """Rank that wrote each row of block b."""
    if b < N_BLOCKS - 1:
        return np.full(rows, b % world)
    w = np.zeros(rows, dtype=np.int64)
    for k in range(world):
        w[k * rows // world:(k + 1) * rows // world] = k
    return w


def expected_layer(ri, b, li, world):
    run = RUNS[ri]
    _, rows, cols = LAYERS[li]
    levels = 1 << run["bits"]
    gs = cols if run["group_size"] == -1 else run["group_size"]
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    codes = ((r * 7 + c * 3 + b * 5 + li * 11 + ri * 13) % levels).astype(np.uint8)
    g = np.arange(groups(run, cols))[:, None]
    rr = np.arange(rows)[None, :]
    scales = (0.25 * (1 + (g * 3 + rr + b + li + ri) % 8)).astype(np.float32)
    zeros = ((g + 2 * rr + b + li) % levels).astype(np.float32)
    cc = np.arange(cols)
    g_idx = (((cc + b + li) % cols) // gs).astype(np.int32)
    perm = ((cols - 1 - cc + b) % cols if run["act_order"] else cc).astype(np.int32)
    writer = writer_of_rows(b, rows, world)
    bias = (writer * 1000 + b * 10 + li + 0.125 * (np.arange(rows) % 8)).astype(np.float32)
    base = 100.0 * ri + 10.0 * b + li
    stats = np.array([base + 0.5, base + 0.25, base + 0.75, writer[0] + 0.125, 0.01 * (ri + 1)])
    return dict(codes=codes, scales=scales, zeros=zeros, g_idx=g_idx, perm=perm, bias=bias), stats


def check_format(f):
    a = f.attrs
    expect(a["format"] == "gptqd-checkpoint", "root format %r" % a["format"])
    expect(int(a["format_version"]) == 3, "format_version")
    expect(isinstance(a["gptqd_version"], str) and a["gptqd_version"], "gptqd_version")
    expect(json.loads(a["model_config"])["model_type"] == "bloom", "model_config is not the JSON given")
    expect(a["job_config"] == "quant:\n  bits: 4\n", "job_config %r" % a["job_config"])
    expect(a["fingerprint"] == "ckpt-writer-test-1", "fingerprint")
    expect(int(a["n_blocks"]) == N_BLOCKS, "n_blocks")
    expect([str(x) for x in a["layers"]] == [l[0] for l in LAYERS], "layers %r" % a["layers"])
    expect(a["layer_shapes"].tolist() == [[l[1], l[2]] for l in LAYERS], "layer_shapes")
    expect([str(x) for x in a["runs"]] == [r["name"] for r in RUNS], "runs")
    for run in RUNS:
        g = f["runs/" + run["name"]]
        for key, want in run.items():
            got = g.attrs[key]
            if isinstance(want, bool):
                expect(isinstance(got, (bool, np.bool_)) and bool(got) == want,
                       "run %s attribute %s = %r" % (run["name"], key, got))
            else:
                expect(got == want, "run %s attribute %s = %r, want %r" % (run["name"], key, got, want))
        expect(g["complete"].dtype == np.uint8 and g["complete"].shape == (N_BLOCKS,), "complete")
        st = g["stats"]
        expect(st.dtype == np.float64 and st.shape == (N_BLOCKS, len(LAYERS), 5), "stats shape")
        expect([str(x) for x in st.attrs["columns"]] ==
               ["gptq_loss", "gptq_err", "rtn_err", "seconds", "damp"], "stats columns")
        for b in range(N_BLOCKS):
            for name, rows, cols in LAYERS:
                lay = g["blocks/%d/%s" % (b, name)]
                ng = groups(run, cols)
                for ds, dtype, shape in [("codes", np.uint8, (rows, cols)),
                                         ("scales", np.float32, (ng, rows)),
                                         ("zeros", np.float32, (ng, rows)),
                                         ("g_idx", np.int32, (cols,)), ("perm", np.int32, (cols,)),
                                         ("bias", np.float32, (rows,)),
                                         ("checksum", np.uint64, (rows + 1,))]:
                    d = lay[ds]
                    expect(d.dtype == dtype and d.shape == shape,
                           "%s/%s is %s%s" % (lay.name, ds, d.dtype, d.shape))
                    expect(d.chunks is None, "%s/%s is chunked" % (lay.name, ds))


def check_data(f, world, mode):
    for ri, run in enumerate(RUNS):
        g = f["runs/" + run["name"]]
        complete = g["complete"][()]
        want = EXPECTED_COMPLETE[mode][run["name"]]
        got = {b for b in range(N_BLOCKS) if complete[b]}
        expect(got == want, "run %s complete blocks %s, want %s" % (run["name"], sorted(got), sorted(want)))
        expect(set(complete.tolist()) <= {0, 1}, "completion values %s" % complete)
        stats = g["stats"][()]
        for b in sorted(want):
            for li, (name, _, _) in enumerate(LAYERS):
                lay = g["blocks/%d/%s" % (b, name)]
                data, st = expected_layer(ri, b, li, world)
                for ds, ref in data.items():
                    got_ds = lay[ds][()]
                    if not np.array_equal(got_ds, ref):
                        bad = np.argwhere(got_ds != ref)[0]
                        fail("%s/%s differs at %s: %r, want %r" % (lay.name, ds, tuple(bad),
                                                                 got_ds[tuple(bad)], ref[tuple(bad)]))
                expect(np.array_equal(stats[b, li], st), "stats[%d,%d] = %s, want %s" % (b, li, stats[b, li], st))
        # Layers never written keep the NaN fill of stats (parallel: w8gall blocks 4 and 5).
        if mode == "parallel" and run["name"] == "w8gall":
            expect(np.isnan(stats[4:6]).all(), "stats of never-written blocks are not NaN")


def check_record(f, prefix):
    marked = set()
    for path in glob.glob(prefix + ".*"):
        for line in open(path):
            parts = line.split()
            if parts[0] == "marked":
                marked.add((parts[1], int(parts[2])))
    in_file = {(run["name"], b) for run in RUNS
               for b in range(N_BLOCKS) if f["runs/%s/complete" % run["name"]][b]}
    expect(marked == in_file, "blocks the ranks recorded as marked %s != completion map %s"
           % (sorted(marked), sorted(in_file)))


def main():
    path, world, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with h5py.File(path, "r") as f:
        check_format(f)
        check_data(f, world, mode)
        if mode == "crash":
            check_record(f, sys.argv[4])
    print("ckpt_check: %s OK (%s, %d ranks)" % (path, mode, world))


if __name__ == "__main__":
    main()
