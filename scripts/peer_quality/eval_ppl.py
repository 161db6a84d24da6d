"""Perplexity of one model directory with gptqd's protocol (scripts/ppl_protocol.py window_nlls:
non-overlapping windows, fp32), run by scripts/peer-quality.sh inside each tool's venv.

    python eval_ppl.py MODEL_DIR EVAL.safetensors SEQLEN [GPTQ_BACKEND]

MODEL_DIR is loaded with transformers' AutoModelForCausalLM in fp32 on the CPU: an original model
as is, a GPTQ export through transformers' GPTQ integration (optimum + gptqmodel's kernels in
.venv-peer), an llm-compressor export through its compressed-tensors loader. GPTQ_BACKEND (e.g.
torch) picks gptqmodel's kernel: its auto choice on an AVX-512 CPU, TorchCpuAvx512Linear, refuses
SmolLM2's 576 inputs at group 128 (not a multiple), where the torch kernel pads. Prints 'ppl: X'.
"""
import os
import sys

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # gptqmodel's torch kernel: 2 min of compiling
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ppl_protocol import window_nlls  # noqa: E402


def main():
    model_dir, tokens, seqlen = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(int(os.environ.get("PQ_THREADS", "2")))
    from transformers import AutoModelForCausalLM
    kw = {}
    if len(sys.argv) > 4:
        import json
        from transformers import GPTQConfig
        bits = json.load(open(f"{model_dir}/config.json"))["quantization_config"]["bits"]
        kw["quantization_config"] = GPTQConfig(bits=bits, backend=sys.argv[4])
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, device_map="cpu",
                                                 **kw)
    model.eval()
    ids = load_file(tokens)["tokens"].to(torch.int64)
    _, ppl = window_nlls(model, ids, seqlen)
    print(f"ppl: {ppl.item():.4f}  ({ids.numel() // seqlen} windows of {seqlen})")


if __name__ == "__main__":
    main()
