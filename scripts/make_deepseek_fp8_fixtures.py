#!/usr/bin/env python3
"""FP8 fixtures for gptqd's reading of DeepSeek-V3 / Kimi-K2 checkpoints as released (issue 19
item 1): linear weights stored as F8_E4M3 with fp32 block scales `<name>_scale_inv`, everything
else in bf16, and config.json's quantization_config
{"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": ...}.

Made from tests/fixtures/deepseek/plain_q (scripts/make_deepseek_fixtures.py, which calls this
script's make() when it regenerates its own fixtures). Regenerate alone, from the repository root,
with the venv make_deepseek_fixtures.py names (torch 2.15.0, transformers 5.25.0):
    /tmp/venv-tf5/bin/python scripts/make_deepseek_fp8_fixtures.py

Writes tests/fixtures/deepseek/ (deterministic, no random numbers):
  fp8/            config.json, model.safetensors: plain_q stored in FP8 with weight_block_size
                  [16, 12] (not square, so a scale grid read transposed or with the block sides
                  swapped fails; plain_q's dimensions 10, 20, 32, 40, 72 rows and 10, 20, 32
                  columns leave short edge blocks, 12 and 48 columns do not). Every linear of the
                  attention and the experts is quantized as DeepSeek's block quantization does:
                  per block, scale_inv = amax / 448 and codes = e4m3fn(w / scale_inv) (rounded to
                  nearest by torch's cast); except model.layers.1.mlp.shared_experts.down_proj,
                  which the config's modules_to_not_convert keeps in bf16. Norms, the router
                  (mlp.gate) and its e_score_correction_bias, the biases and the tied embedding are
                  bf16, as in the released files.
  dequantized/    config.json (plain_q's, no quantization_config), model.safetensors: the same
                  model with each FP8 weight dequantized in numpy, float32(code) * scale_inv[r //
                  16, c // 12] in float32 (DeepSeek's weight_dequant before its cast to bf16), the
                  bf16 tensors as they are in fp8/.
The dequantization is asserted bit-identical to transformers' own _dequantize_fp8_weight (its
finegrained FP8 backward, which takes the block size from the config and cuts the edge blocks
short; its loader's Fp8Dequantize instead derives the block from the scale grid and cannot read
shapes the block does not divide) and to a per-block loop written as DeepSeek's weight_dequant
kernel computes it.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file
from safetensors.torch import save_file
from transformers.integrations.finegrained_fp8 import _dequantize_fp8_weight

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests/fixtures/deepseek/plain_q"
BLOCK = (16, 12)
FP8_MAX = 448.0
KEEP = "model.layers.1.mlp.shared_experts.down_proj"  # modules_to_not_convert
QUANT = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
         "weight_block_size": list(BLOCK), "modules_to_not_convert": [KEEP]}
MADE_WITH = {"made_with": "scripts/make_deepseek_fp8_fixtures.py, torch 2.15.0"}


def is_fp8_linear(name, shape):
    linear = ("self_attn." in name or ".mlp.experts." in name or ".mlp.shared_experts." in name)
    return (linear and name.endswith(".weight") and "layernorm" not in name and len(shape) == 2
            and not name.startswith(KEEP + "."))


def quantize(w):
    """DeepSeek's block quantization: [rows, cols] fp32 -> e4m3fn codes, fp32 [R, C] scale_inv."""
    br, bc = BLOCK
    rows, cols = w.shape
    grid = (-(-rows // br), -(-cols // bc))
    scale_inv = np.empty(grid, np.float32)
    q = np.empty_like(w)
    for i in range(grid[0]):
        for j in range(grid[1]):
            blk = w[i * br:(i + 1) * br, j * bc:(j + 1) * bc]
            s = np.float32(np.abs(blk).max()) / np.float32(FP8_MAX)
            scale_inv[i, j] = s
            q[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = blk / s
    codes = torch.from_numpy(np.clip(q, -FP8_MAX, FP8_MAX)).to(torch.float8_e4m3fn)
    return codes, scale_inv


def dequantize(codes, scale_inv):
    """float32(code) * scale_inv of its block, in float32 (numpy)."""
    br, bc = BLOCK
    w = codes.to(torch.float32).numpy()
    rows, cols = w.shape
    s = np.repeat(np.repeat(scale_inv, br, axis=0), bc, axis=1)[:rows, :cols]
    return (w * s).astype(np.float32)


def check(codes, scale_inv, want, name):
    """want equals transformers' dequantization and a weight_dequant-style block loop, bitwise."""
    tf = _dequantize_fp8_weight(codes, torch.from_numpy(scale_inv), list(BLOCK), torch.float32)
    assert np.array_equal(tf.numpy().view(np.uint32), want.view(np.uint32)), name
    x = codes.to(torch.float32)
    loop = torch.empty_like(x)
    br, bc = BLOCK
    for i in range(scale_inv.shape[0]):
        for j in range(scale_inv.shape[1]):
            blk = (slice(i * br, (i + 1) * br), slice(j * bc, (j + 1) * bc))
            loop[blk] = x[blk] * torch.tensor(scale_inv[i, j])
    assert np.array_equal(loop.numpy().view(np.uint32), want.view(np.uint32)), name


def bf16(a):
    return torch.from_numpy(a).to(torch.bfloat16)


def make(src, out):
    """Writes out/fp8 and out/dequantized from the fp32 fixture model in src."""
    config = json.loads((src / "config.json").read_text())
    weights = load_file(str(src / "model.safetensors"))
    fp8, deq = {}, {}
    quantized = 0
    for name in sorted(weights):
        w = weights[name].astype(np.float32)
        if is_fp8_linear(name, w.shape):
            codes, scale_inv = quantize(w)
            d = dequantize(codes, scale_inv)
            check(codes, scale_inv, d, name)
            assert not np.array_equal(d, w), f"{name}: FP8 changed nothing"
            fp8[name], fp8[name + "_scale_inv"] = codes, torch.from_numpy(scale_inv)
            deq[name] = torch.from_numpy(d)
            quantized += 1
        else:
            fp8[name] = deq[name] = bf16(w)
    assert any(n.startswith(KEEP + ".") for n in fp8), f"{KEEP} not in the model"
    for sub, tensors, cfg in (
            ("fp8", fp8, dict(config, quantization_config=QUANT, dtype="bfloat16")),
            ("dequantized", deq, config)):
        d = out / sub
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(d / "model.safetensors"),
                  metadata=MADE_WITH)
    sizes = ", ".join(f"{p.relative_to(out)} {p.stat().st_size:,}"
                      for p in sorted(out.glob("*/model.safetensors")) if p.parent.name in
                      ("fp8", "dequantized"))
    print(f"fp8: {quantized} FP8 weights in blocks of {BLOCK}; {sizes}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/deepseek")
    a = ap.parse_args()
    if torch.__version__.split("+")[0] != "2.15.0":
        sys.exit(f"error: found torch {torch.__version__}; these fixtures are made with 2.15.0")
    make(a.src, a.out)


if __name__ == "__main__":
    main()
