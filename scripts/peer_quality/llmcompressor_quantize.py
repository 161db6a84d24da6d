"""llm-compressor's GPTQModifier on the shared calibration windows (scripts/peer-quality.sh runs it
in .venv-peer-llmcompressor).

    python llmcompressor_quantize.py MODEL_DIR CALIB.safetensors OUT_DIR BITS GROUP

Mapping of gptqd's job (peer-quality.sh) onto llm-compressor 0.14:
  4-bit asym group G       config_groups weights: int, num_bits, symmetric False, strategy group,
                           group_size G, observer minmax (its default when not dynamic)
  act_order                actorder "static" (= "weight"; the only orders its GPTQ runs: columns by
                           descending Hessian diagonal, groups contiguous in the original order and
                           scale/zero taken from the original weights before the sweep), i.e.
                           gptqd's act_order + static_groups; dynamic groups ("group") are gone
  damp 0.01                dampening_frac 0.01 (x mean of diag H, as gptqd)
  true_sequential          no equivalent: the sequential pipeline calibrates all of a decoder
                           layer's linears on one pass of the layer, then propagates the layer's
                           quantized output to the next (gptqd's true_sequential: false inside a
                           block, quantized inputs across blocks)
  lm_head, embeddings      not quantized (ignore lm_head), as gptqd
  group 128 on SmolLM2     impossible: 576 inputs are 4.5 groups of 128; llm-compressor refuses the
                           layers, and with bypass_divisibility_checks=True its minmax observer
                           fails (unflatten of 576 into groups of 128). peer-quality.sh runs it at
                           group 64 (576 = 9 x 64), beside gptqd-static at the same setting.
The windows go in unshuffled, unpadded, one per batch. fp32 model and forward, CPU.
Prints one 'options:' line and one 'quantize_s:' line (the oneshot() call alone).
"""
import json
import os
import sys
import time

import torch
from safetensors.torch import load_file


def main():
    model_dir, calib, out, bits, group = sys.argv[1:6]
    torch.set_num_threads(int(os.environ.get("PQ_THREADS", "2")))
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.gptq import GPTQModifier
    from transformers import AutoModelForCausalLM
    weights = dict(num_bits=int(bits), type="int", symmetric=False, strategy="group",
                   group_size=int(group), observer="minmax")
    mod = dict(targets=["Linear"], ignore=["lm_head"], actorder="static", dampening_frac=0.01,
               block_size=128)
    windows = load_file(calib)["tokens"].to(torch.int64)
    n, seqlen = windows.shape
    ds = Dataset.from_dict({"input_ids": windows.tolist(),
                            "attention_mask": torch.ones_like(windows).tolist()})
    run = dict(pipeline="sequential", num_calibration_samples=n, max_seq_length=seqlen,
               shuffle_calibration_samples=False, batch_size=1)
    print("options: " + json.dumps(dict(mod, weights=weights, **run, dtype="float32",
                                        device="cpu")), flush=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, device_map="cpu")
    recipe = GPTQModifier(config_groups={"group_0": {"targets": ["Linear"], "weights": weights}},
                          **mod)
    t0 = time.perf_counter()
    oneshot(model=model, dataset=ds, recipe=recipe, **run)
    print(f"quantize_s: {time.perf_counter() - t0:.1f}", flush=True)
    model.save_pretrained(out, save_compressed=True)


if __name__ == "__main__":
    main()
