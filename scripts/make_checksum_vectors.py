#!/usr/bin/env python3
"""Writes tests/fixtures/checkpoint/checksum_vectors.txt: known answers for the checkpoint's hashes.

Values come from python's xxhash (Debian python3-xxhash, the reference C library underneath), not
from gptqd, and the row and meta checksums are computed from the byte recipe of
docs/checkpoint-format.md ("Checksums"), so tests/unit/test_checkpoint_verify.cpp checks gptqd's
Hash64, checksum_of, row_checksums and meta_checksum against an independent implementation of the
documented format: XXH3_64bits for format_version 3, XXH64 for format_version 2. Regenerate (the
output is deterministic; a changed value means a format change):

    /usr/bin/python3 scripts/make_checksum_vectors.py > tests/fixtures/checkpoint/checksum_vectors.txt

Lines (HASH is xxh64 or xxh3; data[i] = (i * 31 + 7) & 255):
    xxh64 SEED LEN HEX   XXH64(data[:LEN], SEED), as the library returns it
    xxh3 LEN HEX         XXH3_64bits(data[:LEN]) (seed 0), as the library returns it
    row HASH R HEX       row R's checksum of the synthetic layer below (rows 10..15 of 16)
    meta HASH HEX        the layer's value `rows` (g_idx, perm, stats, run settings, shape)
The synthetic layer (integers and floats exact in float32):
    cols 40, groups 3, rows written 10..15 (row_begin 10, nr 6)
    codes[r, c] = (r * 40 + c * 7) % 16        r: the row within the written range
    scales[g, r] = 0.25 + 0.5 * g + r / 16     zeros[g, r] = (g * 5 + r) % 16
    bias[r] = 0.75 * r - 2
    layer "mlp.dense_4h_to_h", 16 rows, 40 cols, bias; run "w4g16": bits 4, group_size 16,
    sym 0, act_order 1, static_groups 0, true_sequential 1, damp_percent 0.01, block_size 128,
    mse_clip 0; g_idx[c] = c // 16, perm[c] = 39 - c; stats 0.5, 0.25, 0.125, 3.0, 0.01
"""
import struct

import xxhash

HASHES = {
    "xxh64": lambda b: xxhash.xxh64(b, seed=0).intdigest(),
    "xxh3": lambda b: xxhash.xxh3_64(b, seed=0).intdigest(),
}


def checksum(name, data):
    return HASHES[name](data) or 1  # gptqd stores 0 as 1


def u64(v):
    return struct.pack("<Q", v)


def f32(v):
    return struct.pack("<f", v)


def f64(v):
    return struct.pack("<d", v)


def lstr(s):
    b = s.encode()
    return u64(len(b)) + b


def main():
    data = bytes((i * 31 + 7) & 255 for i in range(1000))
    lengths = (0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 100, 128, 129, 240, 241, 1000)
    for seed in (0, 0x9E3779B97F4A7C15):
        for n in lengths:
            print(f"xxh64 {seed} {n} {xxhash.xxh64(data[:n], seed=seed).intdigest():016x}")
    for n in lengths:  # XXH3 has its own code paths at 16, 128 and 240 bytes
        print(f"xxh3 {n} {xxhash.xxh3_64(data[:n]).intdigest():016x}")

    cols, groups, row_begin, nr = 40, 3, 10, 6
    rows = []
    for r in range(nr):
        b = u64(row_begin + r) + bytes((r * 40 + c * 7) % 16 for c in range(cols))
        for g in range(groups):
            b += f32(0.25 + 0.5 * g + r / 16) + f32(float((g * 5 + r) % 16))
        b += f32(0.75 * r - 2)
        rows.append(b)

    n_rows = 16
    meta = lstr("mlp.dense_4h_to_h") + u64(n_rows) + u64(cols) + u64(1)
    meta += lstr("w4g16") + u64(4) + u64(16) + u64(0) + u64(1) + u64(0) + u64(1) + f64(0.01)
    meta += u64(128) + u64(0)
    meta += struct.pack(f"<{cols}i", *[c // 16 for c in range(cols)])
    meta += struct.pack(f"<{cols}i", *[cols - 1 - c for c in range(cols)])
    meta += b"".join(f64(v) for v in (0.5, 0.25, 0.125, 3.0, 0.01))

    for name in HASHES:
        for r, b in enumerate(rows):
            print(f"row {name} {row_begin + r} {checksum(name, b):016x}")
        print(f"meta {name} {checksum(name, meta):016x}")


if __name__ == "__main__":
    main()
