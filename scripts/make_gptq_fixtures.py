#!/usr/bin/env python3
"""Golden fixtures for gptqd's GPTQ (tests/unit/test_gptq_reference.cpp), made with the PyTorch
port of the reference in scripts/gptq_reference.py (IST-DASLab/gptq + AutoGPTQ, fp32).

Regenerate, from the repository root (deterministic: fixed torch seeds, CPU, one thread):
    /usr/bin/python3 scripts/make_gptq_fixtures.py
or, equivalently,
    source scripts/python-env.sh && "$GPTQD_PYTHON" scripts/make_gptq_fixtures.py
Needs Debian's python3-torch (1.13) and numpy only. The fixtures in the repository were made with
torch 1.13.1 (Debian) on x86-64; another torch or BLAS may round a few fp32 operations
differently, which moves a handful of codes (the C++ test's bar, >= 99% identical codes and the
loss within 1%, leaves room for that).

Writes tests/fixtures/gptq/ (removing the old *.safetensors there first):
  problem_<p>.safetensors  one layer each, in `gptqd layer`'s input contract:
      weight [out, in], inputs [tokens, in] (F32, or F16/BF16 to cover the conversions), an
      optional bias [out]; problem "indefinite" has `hessian` [in, in] F32 instead of inputs.
      Inputs are correlated (a low-rank mix plus noise, per-feature scales over e^[-1.5, 1.5] and
      a few 6x outlier features, like a transformer's), with dead (all-zero) features in some.
  case_<name>.safetensors  the reference's result for one setting of one problem:
      codes U8 [out, in] (original column order), scales F32 [groups, out], zeros F32
      [groups, out] (AutoGPTQ's group order), g_idx I32 [in], perm I32 [in], loss F32 [1]
      (the sum of the per-column losses), damp F32 [1] (damp_percent after retries);
      __metadata__: problem, bits, group_size, sym, act_order, static_groups, damp, block_size,
      mse_clip (strings; booleans "0"/"1").
The Hessian the reference uses is (2 / tokens) X^T X computed by its add_batch in fp32 with every
token row one sample (what `gptqd layer` does); the test recomputes it with gptqd's
HessianAccumulator, so the comparison covers the Hessian too.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gptq_reference as ref  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures', 'gptq')


def correlated_inputs(gen, tokens, cols, rank, dead=()):
    z = torch.randn(tokens, rank, generator=gen)
    mix = torch.randn(rank, cols, generator=gen) / rank ** 0.5
    scale = torch.exp(3 * torch.rand(cols, generator=gen) - 1.5)
    outliers = torch.randperm(cols, generator=gen)[:max(1, cols // 40)]
    scale[outliers] *= 6
    x = (z @ mix + 0.1 * torch.randn(tokens, cols, generator=gen)) * scale
    for c in dead:
        x[:, c] = 0
    return x


def problem(name, rows, cols, tokens, seed, rank=None, dead=(), wdtype='F32', xdtype='F32',
            bias=False):
    gen = torch.Generator().manual_seed(seed)
    x = correlated_inputs(gen, tokens, cols, rank or max(4, cols // 4), dead)
    w = 0.05 * torch.randn(rows, cols, generator=gen)
    tensors = []
    # The values both sides use are the stored ones, converted exactly to fp32.
    if wdtype == 'BF16':
        tensors.append(('weight', 'BF16', ref.bf16_bits(w)))
        w = w.to(torch.bfloat16).float()
    else:
        tensors.append(('weight', 'F32', w.numpy()))
    if xdtype == 'F16':
        tensors.append(('inputs', 'F16', x.half().numpy()))
        x = x.half().float()
    else:
        tensors.append(('inputs', 'F32', x.numpy()))
    if bias:
        tensors.append(('bias', 'F32', torch.randn(rows, generator=gen).numpy()))
    ref.write_safetensors(os.path.join(OUT, 'problem_%s.safetensors' % name), tensors)
    return {'weight': w, 'inputs': x, 'hessian': None}


def indefinite_problem(name, rows, cols, seed):
    """A Hessian with a negative eigenvalue of -0.05 mean(diag H): damp_percent 0.01, 0.02 and
    0.04 fail, 0.08 works (a Gram matrix is never like this; a broken accumulation could be)."""
    gen = torch.Generator().manual_seed(seed)
    x = correlated_inputs(gen, 4 * cols, cols, cols // 4).double()
    h = 2 * x.t() @ x / x.shape[0]
    v = torch.randn(cols, generator=gen).double()
    v /= v.norm()
    p = torch.eye(cols, dtype=torch.float64) - torch.outer(v, v)
    h = p @ h @ p
    h -= 0.05 * torch.mean(torch.diag(h)) * torch.eye(cols, dtype=torch.float64)
    h = ((h + h.t()) / 2).float()
    w = 0.05 * torch.randn(rows, cols, generator=gen)
    ref.write_safetensors(os.path.join(OUT, 'problem_%s.safetensors' % name),
                          [('weight', 'F32', w.numpy()), ('hessian', 'F32', h.numpy())])
    return {'weight': w, 'inputs': None, 'hessian': h}


# (name, problem, bits, group_size, sym, act_order, static_groups, damp, block_size, mse_clip)
CASES = [
    # Every bits x group size, with sym/act_order/static_groups spread over them.
    ('w2_g-1', 'p70x200', 2, -1, 0, 0, 0, 0.01, 128, 0),
    ('w2_g32_act', 'p70x200', 2, 32, 0, 1, 0, 0.01, 128, 0),
    ('w2_g128_sym_static', 'p70x200', 2, 128, 1, 0, 1, 0.01, 128, 0),
    ('w3_g-1_sym_act', 'p70x200', 3, -1, 1, 1, 0, 0.01, 128, 0),
    ('w3_g32_static', 'p70x200', 3, 32, 0, 0, 1, 0.01, 128, 0),
    ('w3_g128_act_static', 'p70x200', 3, 128, 0, 1, 1, 0.01, 128, 0),
    ('w4_g-1_mse', 'p70x200', 4, -1, 0, 0, 0, 0.01, 128, 1),
    ('w4_g32_sym_act_static', 'p70x200', 4, 32, 1, 1, 1, 0.01, 128, 0),
    ('w4_g128', 'p70x200', 4, 128, 0, 0, 0, 0.01, 128, 0),
    ('w4_g128_act', 'p70x200', 4, 128, 0, 1, 0, 0.01, 128, 0),
    ('w8_g-1_sym', 'p70x200', 8, -1, 1, 0, 0, 0.01, 128, 0),
    ('w8_g32_act', 'p70x200', 8, 32, 0, 1, 0, 0.01, 128, 0),
    ('w8_g128_static', 'p70x200', 8, 128, 0, 0, 1, 0.01, 128, 0),
    # Groups starting inside a block (48 does not divide 64), a short last group (200 = 4 * 48 +
    # 8) and a short last block; a block size dividing neither 32 nor the columns.
    ('w4_g48_b64', 'p70x200', 4, 48, 0, 0, 0, 0.01, 64, 0),
    ('w3_g48_b64_act', 'p70x200', 3, 48, 0, 1, 0, 0.01, 64, 0),
    ('w4_g32_b50_sym_act_static', 'p70x200', 4, 32, 1, 1, 1, 0.01, 50, 0),
    ('w2_g48_b64_act_static', 'p70x200', 2, 48, 0, 1, 1, 0.01, 64, 0),
    # mse_clip, asymmetric and symmetric, per row and grouped.
    ('w3_g128_mse_sym_act', 'p70x200', 3, 128, 1, 1, 0, 0.01, 128, 1),
    ('w4_g-1_sym_mse_small', 'p48x80', 4, -1, 1, 0, 0, 0.01, 128, 1),
    ('w3_g32_mse_small', 'p48x80', 3, 32, 0, 0, 0, 0.01, 128, 1),
    # 48 x 80: a group larger than the row, 80 columns not a multiple of 32, block 32.
    ('w4_g128_over_cols', 'p48x80', 4, 128, 0, 0, 0, 0.01, 128, 0),
    ('w2_g32_b32_act_small', 'p48x80', 2, 32, 0, 1, 0, 0.01, 32, 0),
    ('w8_g32_sym_static_small', 'p48x80', 8, 32, 1, 0, 1, 0.01, 128, 0),
    # Fewer tokens than features: a singular Hessian; with damp 0 the factorization fails and
    # the retry's damp 0.01 works.
    ('w4_g32_damp0', 'lowrank', 4, 32, 0, 0, 0, 0.0, 128, 0),
    ('w3_g-1_act_damp0', 'lowrank', 3, -1, 0, 1, 0, 0.0, 128, 0),
    # An indefinite Hessian: three doublings of the damp (0.01 -> 0.08).
    ('w4_g32_indefinite', 'indefinite', 4, 32, 0, 0, 0, 0.01, 128, 0),
    ('w3_g-1_sym_act_indefinite', 'indefinite', 3, -1, 1, 1, 0, 0.01, 16, 0),
]


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith('.safetensors'):
            os.remove(os.path.join(OUT, f))
    problems = {
        # Dead features 3, 77 and 150; weight stored BF16 and inputs F16.
        'p70x200': problem('p70x200', 70, 200, 256, 1, dead=(3, 77, 150), wdtype='BF16',
                           xdtype='F16'),
        'p48x80': problem('p48x80', 48, 80, 256, 2, bias=True),
        'lowrank': problem('lowrank', 40, 96, 48, 3),
        'indefinite': indefinite_problem('indefinite', 24, 64, 4),
    }
    for (name, pname, bits, gs, sym, act, static, damp, block, mse) in CASES:
        p = problems[pname]
        r = ref.run_reference(p['weight'], p['inputs'], bits, gs, sym=bool(sym),
                              act_order=bool(act), static_groups=bool(static), damp=damp,
                              block_size=block, mse_clip=bool(mse), hessian=p['hessian'])
        meta = {'problem': pname, 'bits': bits, 'group_size': gs, 'sym': sym, 'act_order': act,
                'static_groups': static, 'damp': damp, 'block_size': block, 'mse_clip': mse}
        ref.write_safetensors(os.path.join(OUT, 'case_%s.safetensors' % name), [
            ('codes', 'U8', r['codes'].numpy()),
            ('scales', 'F32', r['scales'].numpy()),
            ('zeros', 'F32', r['zeros'].numpy()),
            ('g_idx', 'I32', r['g_idx'].numpy()),
            ('perm', 'I32', r['perm'].numpy()),
            ('loss', 'F32', np.array([r['loss']], dtype=np.float32)),
            ('damp', 'F32', np.array([r['damp']], dtype=np.float32)),
        ], meta)
        print('%-28s loss %-12.6g damp %g' % (name, r['loss'], r['damp']))


if __name__ == '__main__':
    main()
