"""GPTQModel's GPTQ on the shared calibration windows (scripts/peer-quality.sh runs it in .venv-peer).

    python gptqmodel_quantize.py MODEL_DIR CALIB.safetensors OUT_DIR BITS GROUP

The options are those of gptqd's job in peer-quality.sh (asym, act_order with the reference's
dynamic groups, true_sequential, damp 0.01), written out in full where GPTQModel's default
differs: act_group_aware (its GAR ordering, on by default) off because desc_act replaces it,
mse 0 (plain min/max range), fp32 weights and forward (on CPU it would pick bfloat16).
The windows go in as given (calibration_sort=None: no reordering, no concatenation).
Prints one 'options:' line and one 'quantize_s:' line (the quantize() call alone).
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
    # Its CPU worker pool defaults to (cores + 1) // 2 workers, 1 on 2 cores, and its model
    # loader then refuses to start ("requests 2 workers but parent 'cpu' only has 1").
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
    from gptqmodel import GPTQModel, QuantizeConfig
    opts = dict(bits=int(bits), group_size=int(group), sym=False, desc_act=True,
                act_group_aware=False, static_groups=False, true_sequential=True,
                damp_percent=0.01, mse=0.0)
    qc = QuantizeConfig(**opts)
    windows = load_file(calib)["tokens"].to(torch.int64)
    data = [{"input_ids": w.tolist(), "attention_mask": [1] * w.numel()} for w in windows]
    print("options: " + json.dumps(dict(opts, damp_auto_increment=qc.damp_auto_increment,
                                        dtype="float32", device="cpu", batch_size=1,
                                        calibration_sort=None,
                                        GPTQMODEL_CPU_WORKERS=os.environ["GPTQMODEL_CPU_WORKERS"])),
          flush=True)
    model = GPTQModel.load(model_dir, qc, device="cpu", dtype=torch.float32)
    t0 = time.perf_counter()
    model.quantize(data, batch_size=1, calibration_sort=None)
    print(f"quantize_s: {time.perf_counter() - t0:.1f}", flush=True)
    model.save(out)


if __name__ == "__main__":
    main()
