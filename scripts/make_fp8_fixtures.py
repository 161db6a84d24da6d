#!/usr/bin/env python3
"""Reference values for gptqd's FP8 (e4m3fn) decoding and 128 x 128 block dequantization
(kernels/fp8.h), made with torch's own float8_e4m3fn type, independently of gptqd's code.

Regenerate, from the repository root (any torch >= 2.1 with float8 types and safetensors; the
fixture in the tree was made with torch 2.15 and safetensors 0.8):
    python3 scripts/make_fp8_fixtures.py          # with that torch on the path
Writes tests/fixtures/fp8/fp8_blocks.safetensors (about 0.35 MB):
  codes      U8 [256]          every code 0..255
  decoded    F32 [256]         torch's value of each code (float8_e4m3fn -> float32)
  weight     F8_E4M3 [130, 259] random finite codes; odd shapes, so the last block row and
                               column are partial (the ceil rule of the scales' shape)
  weight_scale_inv F32 [2, 3]  positive scales, very different per block
  out_f32    F32 [130, 259]    weight.float() * scale_inv expanded per 128 x 128 block
  out_bf16   F32 [130, 259]    out_f32 rounded to bf16 (torch .to(bfloat16)): what DeepSeek-V3's
                               weight_dequant stores under its bf16 default dtype
"""
import os
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "fp8", "fp8_blocks.safetensors")


def main():
    g = torch.Generator().manual_seed(20261207)
    codes = torch.arange(256, dtype=torch.uint8)
    decoded = codes.view(torch.float8_e4m3fn).to(torch.float32)
    rows, cols, block = 130, 259, 128
    w_codes = torch.randint(0, 256, (rows, cols), generator=g, dtype=torch.int64).to(torch.uint8)
    w_codes[(w_codes & 0x7F) == 0x7F] = 0x3C  # no NaN codes in the weight
    weight = w_codes.view(torch.float8_e4m3fn)
    sr, sc = (rows + block - 1) // block, (cols + block - 1) // block
    scale = torch.tensor([[1.5e-4, 2.0, 0.03125], [7.0, 1e-3, 0.33]], dtype=torch.float32)
    assert scale.shape == (sr, sc)
    expanded = scale.repeat_interleave(block, 0)[:rows].repeat_interleave(block, 1)[:, :cols]
    out_f32 = weight.to(torch.float32) * expanded
    out_bf16 = out_f32.to(torch.bfloat16).to(torch.float32)
    tensors = {
        "codes": codes,
        "decoded": decoded,
        "weight": weight.contiguous(),
        "weight_scale_inv": scale,
        "out_f32": out_f32.contiguous(),
        "out_bf16": out_bf16.contiguous(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(tensors, OUT, metadata={"made_by": f"scripts/make_fp8_fixtures.py, torch {torch.__version__}"})
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes) with torch {torch.__version__}")


if __name__ == "__main__":
    sys.exit(main())
