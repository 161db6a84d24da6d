#!/usr/bin/env python3
"""The GPTQ reference in PyTorch: a straight port of IST-DASLab/gptq (gptq.py fasterquant and
add_batch, quant.py's Quantizer with perchannel weights), with AutoGPTQ's static_groups, g_idx and
per-group scale/zero lists (auto_gptq/quantization/gptq.py). It is what gptqd's C++ GPTQ is
compared with (scripts/make_gptq_fixtures.py, tests/unit/test_gptq_reference.cpp) and timed
against (bench/gptq_layer.cpp). The arithmetic is the original's, in fp32 on the CPU, including
torch.linalg.cholesky / cholesky_inverse / cholesky(upper=True) in fp32.

Differences from the original, all deliberate and none in the arithmetic of a successful run:
  - Damping retry. The original has none (a failed Cholesky raises). Like gptqd, when the damped
    Hessian's factorization fails, percdamp is doubled (0 becomes 0.01) and the factorization
    retried, at most `max_damp_retries` (8) times; the damp that worked is returned. This makes
    the "Hessian needs more damping" case comparable.
  - act_order sorts diag(H) with a stable sort (ties keep the column order) where the original's
    torch.argsort is not stable: ties (dead columns all have diag 1) otherwise make the result
    depend on the sort implementation. gptqd breaks ties the same way.
  - The integer codes are recorded beside Q (the original keeps only Q = scale * (code - zero));
    the code is computed with the same formula quantize() uses.
  - Phase timers (time.perf_counter) around the Hessian, the factorization and the sweep.

A 2-D input [tokens, in] is counted as `tokens` samples (each token row one sample):
H = (2 / tokens) X^T X, as gptqd layer does. (The original's add_batch counts a 2-D input as ONE
sample; the factor cancels in GPTQ except in the loss, whose units it sets.)

Command line (the tensor contract of `gptqd layer`):
    /usr/bin/python3 scripts/gptq_reference.py --in L.safetensors --out R.safetensors \\
        --bits 4 --group-size 128 [--sym] [--act-order] [--static-groups] [--damp 0.01] \\
        [--block-size 128] [--mse-clip] [--threads T]
reads `weight` [out, in] and `inputs` [tokens, in] (F32/F16/BF16), writes codes U8 [out, in],
scales/zeros F32 [groups, out], g_idx/perm I32 [in], dequant F32 [out, in], loss F32 [1], and
prints one JSON line: {"loss", "damp", "seconds": {"hessian", "factor", "sweep", "total"}}.
Needs only Debian's python3-torch and numpy (/usr/bin/python3) or the .venv of
scripts/python-env.sh.
"""

import argparse
import copy
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn

# ---- quant.py ---------------------------------------------------------------------------------


def quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def quantize_code(x, scale, zero, maxq):
    """The integer code quantize() dequantizes (recorded for the fixtures)."""
    return torch.clamp(torch.round(x / scale) + zero, 0, maxq)


class Quantizer(nn.Module):
    def __init__(self, shape=1):
        super(Quantizer, self).__init__()
        self.register_buffer('maxq', torch.tensor(0))
        self.register_buffer('scale', torch.zeros(shape))
        self.register_buffer('zero', torch.zeros(shape))

    def configure(self, bits, perchannel=False, sym=True, mse=False, norm=2.4, grid=100,
                  maxshrink=.8):
        self.maxq = torch.tensor(2 ** bits - 1)
        self.perchannel = perchannel
        self.sym = sym
        self.mse = mse
        self.norm = norm
        self.grid = grid
        self.maxshrink = maxshrink

    def find_params(self, x, weight=False):
        dev = x.device
        self.maxq = self.maxq.to(dev)

        shape = x.shape
        if self.perchannel:
            if weight:
                x = x.flatten(1)
            else:
                if len(shape) == 4:
                    x = x.permute([1, 0, 2, 3])
                    x = x.flatten(1)
                if len(shape) == 3:
                    x = x.reshape((-1, shape[-1])).t()
                if len(shape) == 2:
                    x = x.t()
        else:
            x = x.flatten().unsqueeze(0)

        tmp = torch.zeros(x.shape[0], device=dev)
        xmin = torch.minimum(x.min(1)[0], tmp)
        xmax = torch.maximum(x.max(1)[0], tmp)

        if self.sym:
            xmax = torch.maximum(torch.abs(xmin), xmax)
            tmp = xmin < 0
            if torch.any(tmp):
                xmin[tmp] = -xmax[tmp]
        tmp = (xmin == 0) & (xmax == 0)
        xmin[tmp] = -1
        xmax[tmp] = +1

        self.scale = (xmax - xmin) / self.maxq
        if self.sym:
            self.zero = torch.full_like(self.scale, (self.maxq + 1) / 2)
        else:
            self.zero = torch.round(-xmin / self.scale)

        if self.mse:
            best = torch.full([x.shape[0]], float('inf'), device=dev)
            for i in range(int(self.maxshrink * self.grid)):
                p = 1 - i / self.grid
                xmin1 = p * xmin
                xmax1 = p * xmax
                scale1 = (xmax1 - xmin1) / self.maxq
                zero1 = torch.round(-xmin1 / scale1) if not self.sym else self.zero
                q = quantize(x, scale1.unsqueeze(1), zero1.unsqueeze(1), self.maxq)
                q -= x
                q.abs_()
                q.pow_(self.norm)
                err = torch.sum(q, 1)
                tmp = err < best
                if torch.any(tmp):
                    best[tmp] = err[tmp]
                    self.scale[tmp] = scale1[tmp]
                    self.zero[tmp] = zero1[tmp]
        if not self.perchannel:
            if weight:
                tmp = shape[0]
            else:
                tmp = shape[1] if len(shape) != 3 else shape[2]
            self.scale = self.scale.repeat(tmp)
            self.zero = self.zero.repeat(tmp)

        if weight:
            shape = [-1] + [1] * (len(shape) - 1)
            self.scale = self.scale.reshape(shape)
            self.zero = self.zero.reshape(shape)
            return
        if len(shape) == 4:
            self.scale = self.scale.reshape((1, -1, 1, 1))
            self.zero = self.zero.reshape((1, -1, 1, 1))
        if len(shape) == 3:
            self.scale = self.scale.reshape((1, 1, -1))
            self.zero = self.zero.reshape((1, 1, -1))
        if len(shape) == 2:
            self.scale = self.scale.unsqueeze(0)
            self.zero = self.zero.unsqueeze(0)

    def quantize(self, x):
        if self.ready():
            return quantize(x, self.scale, self.zero, self.maxq)
        return x

    def enabled(self):
        return self.maxq > 0

    def ready(self):
        return torch.all(self.scale != 0)


# ---- gptq.py ----------------------------------------------------------------------------------


class GPTQ:
    """gptq.py's GPTQ for an nn.Linear-shaped weight [rows, columns] given directly."""

    def __init__(self, weight):
        W = weight.clone()
        self.weight = W
        self.dev = W.device
        self.rows = W.shape[0]
        self.columns = W.shape[1]
        self.H = torch.zeros((self.columns, self.columns), device=self.dev)
        self.nsamples = 0
        self.quantizer = Quantizer()
        self.max_damp_retries = 8

    def add_batch(self, inp):
        if len(inp.shape) == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        if len(inp.shape) == 3:
            inp = inp.reshape((-1, inp.shape[-1]))
        inp = inp.t()
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = math.sqrt(2 / self.nsamples) * inp.float()
        self.H += inp.matmul(inp.t())

    def _damped_inverse_factor(self, H, percdamp):
        """The original's three factorizations, retried with a doubled percdamp on failure."""
        diag = torch.arange(self.columns, device=self.dev)
        mean = torch.mean(torch.diag(H))
        for attempt in range(self.max_damp_retries + 1):
            Hd = H.clone()
            damp = percdamp * mean
            Hd[diag, diag] += damp
            L, info = torch.linalg.cholesky_ex(Hd)
            if info == 0:
                Hd = torch.cholesky_inverse(L)
                Hd, info = torch.linalg.cholesky_ex(Hd, upper=True)
                if info == 0:
                    return Hd, percdamp
            if attempt == self.max_damp_retries:
                raise RuntimeError('the damped Hessian is not positive definite (last percdamp %g)'
                                   % percdamp)
            nxt = 2 * percdamp if percdamp > 0 else 0.01
            print('gptq_reference: Cholesky failed with percdamp %g; retrying with %g'
                  % (percdamp, nxt), file=sys.stderr)
            percdamp = nxt

    def fasterquant(self, blocksize=128, percdamp=.01, groupsize=-1, actorder=False,
                    static_groups=False, timings=None):
        W = self.weight.clone()
        W = W.float()

        tick = time.perf_counter()

        if not self.quantizer.ready():
            self.quantizer.find_params(W, weight=True)

        H = self.H
        del self.H
        dead = torch.diag(H) == 0
        H[dead, dead] = 1
        W[:, dead] = 0

        g_idx = []
        scale = []
        zero = []
        now_idx = 1

        if static_groups:
            groups = []
            for i in range(0, self.columns, groupsize):
                quantizer = copy.deepcopy(self.quantizer)
                quantizer.find_params(W[:, i:(i + groupsize)], weight=True)
                scale.append(quantizer.scale)
                zero.append(quantizer.zero)
                groups.append(quantizer)

        if actorder:
            perm = torch.sort(torch.diag(H), descending=True, stable=True)[1]
            W = W[:, perm]
            H = H[perm][:, perm]
            invperm = torch.argsort(perm)

        Losses = torch.zeros_like(W)
        Q = torch.zeros_like(W)
        C = torch.zeros_like(W)

        t_factor = time.perf_counter()
        H, damp_used = self._damped_inverse_factor(H, percdamp)
        Hinv = H
        t_sweep = time.perf_counter()

        for i1 in range(0, self.columns, blocksize):
            i2 = min(i1 + blocksize, self.columns)
            count = i2 - i1

            W1 = W[:, i1:i2].clone()
            Q1 = torch.zeros_like(W1)
            C1 = torch.zeros_like(W1)
            Err1 = torch.zeros_like(W1)
            Losses1 = torch.zeros_like(W1)
            Hinv1 = Hinv[i1:i2, i1:i2]

            for i in range(count):
                w = W1[:, i]
                d = Hinv1[i, i]

                if groupsize != -1:
                    if not static_groups:
                        if (i1 + i) % groupsize == 0:
                            self.quantizer.find_params(W[:, (i1 + i):(i1 + i + groupsize)],
                                                       weight=True)

                        if ((i1 + i) // groupsize) - now_idx == -1:
                            scale.append(self.quantizer.scale)
                            zero.append(self.quantizer.zero)
                            now_idx += 1
                    else:
                        idx = i1 + i
                        if actorder:
                            idx = perm[idx]
                        self.quantizer = groups[idx // groupsize]

                q = self.quantizer.quantize(w.unsqueeze(1)).flatten()
                C1[:, i] = quantize_code(w.unsqueeze(1), self.quantizer.scale,
                                         self.quantizer.zero, self.quantizer.maxq).flatten()
                Q1[:, i] = q
                Losses1[:, i] = (w - q) ** 2 / d ** 2

                err1 = (w - q) / d
                W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
                Err1[:, i] = err1

            Q[:, i1:i2] = Q1
            C[:, i1:i2] = C1
            Losses[:, i1:i2] = Losses1 / 2

            W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])

        t_end = time.perf_counter()
        loss = torch.sum(Losses).item()

        groupsize = groupsize if groupsize != -1 else self.columns
        if static_groups and actorder:
            g_idx = [perm[i] // groupsize for i in range(self.columns)]
        else:
            g_idx = [i // groupsize for i in range(self.columns)]
        g_idx = torch.tensor(g_idx, dtype=torch.int32, device=Q.device)
        if actorder:
            Q = Q[:, invperm]
            C = C[:, invperm]
            g_idx = g_idx[invperm]
        else:
            perm = torch.arange(self.columns)

        if scale == []:
            scale.append(self.quantizer.scale)
            zero.append(self.quantizer.zero)
        scale = torch.cat(scale, dim=1)
        zero = torch.cat(zero, dim=1)
        if timings is not None:
            timings['prepare'] = t_factor - tick
            timings['factor'] = t_sweep - t_factor
            timings['sweep'] = t_end - t_sweep
        return {'Q': Q, 'codes': C.to(torch.uint8), 'scales': scale.t().contiguous(),
                'zeros': zero.t().contiguous(), 'g_idx': g_idx,
                'perm': perm.to(torch.int32), 'loss': loss, 'damp': damp_used}


def run_reference(weight, inputs, bits, group_size, sym=False, act_order=False,
                  static_groups=False, damp=0.01, block_size=128, mse_clip=False, hessian=None,
                  timings=None):
    """GPTQ of weight [rows, cols] with the Hessian of inputs [tokens, cols] (each token one
    sample, one add_batch) or an explicit `hessian`. Returns fasterquant's dict."""
    t0 = time.perf_counter()
    gptq = GPTQ(weight.float())
    if hessian is not None:
        gptq.H = hessian.clone().float()
    else:
        gptq.add_batch(inputs.float().unsqueeze(1))
    t1 = time.perf_counter()
    gptq.quantizer.configure(bits, perchannel=True, sym=sym, mse=mse_clip)
    out = gptq.fasterquant(blocksize=block_size, percdamp=damp, groupsize=group_size,
                           actorder=act_order, static_groups=static_groups, timings=timings)
    if timings is not None:
        timings['hessian'] = t1 - t0
        timings['total'] = time.perf_counter() - t0
    return out


# ---- safetensors, without the safetensors package ---------------------------------------------

_NP = {'F32': np.float32, 'F16': np.float16, 'U8': np.uint8, 'I32': np.int32, 'I64': np.int64,
       'F64': np.float64}


def read_safetensors(path):
    """{name: torch tensor} (BF16 converted exactly to fp32) and the metadata dict."""
    with open(path, 'rb') as f:
        data = f.read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop('__metadata__', {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        b, e = info['data_offsets']
        raw = data[base + b:base + e]
        if info['dtype'] == 'BF16':
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_NP[info['dtype']]).copy()
        out[name] = torch.from_numpy(arr.reshape(info['shape']).copy())
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype name, numpy array); BF16 arrays given as uint16 bits."""
    header = {}
    if metadata:
        header['__metadata__'] = {k: str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name, dtype, arr in tensors:
        blob = np.ascontiguousarray(arr).tobytes()
        header[name] = {'dtype': dtype, 'shape': list(arr.shape),
                        'data_offsets': [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * ((8 - len(text) % 8) % 8)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def bf16_bits(x):
    """fp32 tensor -> uint16 numpy array of its bfloat16 (round to nearest even) bits."""
    return x.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


# ---- command line -----------------------------------------------------------------------------


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--in', dest='inp', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--bits', type=int, required=True, choices=[2, 3, 4, 8])
    ap.add_argument('--group-size', type=int, required=True)
    ap.add_argument('--sym', action='store_true')
    ap.add_argument('--act-order', action='store_true')
    ap.add_argument('--static-groups', action='store_true')
    ap.add_argument('--damp', type=float, default=0.01)
    ap.add_argument('--block-size', type=int, default=128)
    ap.add_argument('--mse-clip', action='store_true')
    ap.add_argument('--threads', type=int, default=0)
    a = ap.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    tensors, _ = read_safetensors(a.inp)
    timings = {}
    r = run_reference(tensors['weight'], tensors['inputs'], a.bits, a.group_size, sym=a.sym,
                      act_order=a.act_order, static_groups=a.static_groups, damp=a.damp,
                      block_size=a.block_size, mse_clip=a.mse_clip, timings=timings)
    write_safetensors(a.out, [
        ('codes', 'U8', r['codes'].numpy()),
        ('scales', 'F32', r['scales'].numpy()),
        ('zeros', 'F32', r['zeros'].numpy()),
        ('g_idx', 'I32', r['g_idx'].numpy()),
        ('perm', 'I32', r['perm'].numpy()),
        ('dequant', 'F32', r['Q'].numpy()),
        ('loss', 'F32', np.array([r['loss']], dtype=np.float32)),
    ])
    print(json.dumps({'loss': r['loss'], 'damp': r['damp'], 'threads': torch.get_num_threads(),
                      'seconds': timings}))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
