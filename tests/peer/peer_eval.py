"""Loads one gptqd export with one real loader and measures it as `gptqd eval` does.

    python peer_eval.py LOADER --jobs JOBS --text data/austen-eval-20k.txt --seqlen 128

JOBS: one line per export "EXPORT_DIR RESULT.json ORIGINAL_MODEL_DIR" (the model is read by
the ref loader only); one process loads them all, so each environment is imported once.

LOADER:
  hf-gptqmodel  transformers.AutoModelForCausalLM.from_pretrained (its GPTQ integration, optimum
                and gptqmodel kernels; env .venv-peer)
  gptqmodel     gptqmodel.GPTQModel.load(dir, device="cpu"): bfloat16 on CPU    (.venv-peer)
  hf-autogptq   transformers.AutoModelForCausalLM.from_pretrained with
                GPTQConfig(use_exllama=False): optimum + auto-gptq kernels (.venv-peer-autogptq)
  autogptq      auto_gptq.AutoGPTQForCausalLM.from_quantized(dir, device="cpu",
                disable_exllama=True, disable_exllamav2=True)               (.venv-peer-autogptq)
  hf-ct         transformers.AutoModelForCausalLM.from_pretrained of a compressed-tensors
                export (its CompressedTensorsHfQuantizer, compressed-tensors)       (.venv-peer)
  hf-defuser    mixtures of experts: defuser.replace_fused_blocks(model_type) (ModelCloud's
                Defuser, a GPTQModel dependency: transformers 5 builds per-expert nn.Linear
                again), then hf-gptqmodel's call; for compressed-tensors exports hf-ct's. Mixtral:
                with key_mapping={w1: gate_proj, w3: up_proj, w2: down_proj}, as the user must
                pass it: Defuser renames only the experts' `.weight` tensors    (.venv-peer)
  gptqmodel-fp32  mixtures of experts: GPTQModel.load(dir, device="cpu", dtype=torch.float32)
                (4-bit symmetric runs, which its fp32 CPU kernels compute correctly)  (.venv-peer)
  ref           plain transformers on the ORIGINAL model with every quantized linear replaced by
                the weights a gptq_v2 export dequantizes to (scales[g_idx] * (q - zero)), in
                numpy: the greedy text the loaders must reproduce. Mixtures of experts: the
                original model's files with those weights, written as an ordinary checkpoint
                and loaded by from_pretrained (which fuses the experts as for any checkpoint)
  ref-bf16      the same in bfloat16: what GPTQModel.load's CPU default is compared with

A transformers load (hf-*) whose load report has missing keys (parameters left at their random
initialization, e.g. fused experts the checkpoint's per-expert tensors do not fill) is a refusal
naming them: the model would compute garbage.

Perplexity: the GPTQ paper's protocol as gptqd eval runs it (the text tokenized with the
tokenizer's specials, non-overlapping windows of seqlen, exp of the mean window NLL), fp32.
Greedy: 24 new tokens after a fixed prompt. Writes JSON {loader, ppl, windows, greedy, versions,
config_warnings (lines a loader logged about unknown config keys)}. A loader that refuses the
export: JSON {refused: "<its message>"}; one that fails later: {crashed: "<message>"}.
"""
import argparse
import io
import json
import logging
import sys
import time
from importlib.metadata import version

import torch

PROMPT = "It is a truth universally acknowledged, that a single man"


def versions(names):
    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except Exception:
            out[n] = None
    return out


def capture_logs():
    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(h)
    root.setLevel(logging.INFO)
    return buf


MOE_TYPES = ("mixtral", "qwen2_moe", "qwen3_moe")


def model_type(d):
    return json.load(open(f"{d}/config.json")).get("model_type")


MIXTRAL_EXPERT_NAMES = {r"\.w1\.": ".gate_proj.", r"\.w3\.": ".up_proj.", r"\.w2\.": ".down_proj."}


def hf_load(d, **kwargs):
    """from_pretrained as a user calls it; missing keys in its load report are a refusal."""
    from transformers import AutoModelForCausalLM
    m, info = AutoModelForCausalLM.from_pretrained(d, device_map="cpu", dtype=torch.float32,
                                                   output_loading_info=True, **kwargs)
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        unexpected = sorted(info.get("unexpected_keys") or [])
        raise RuntimeError(f"load report: {len(missing)} missing key(s) (e.g. {missing[:3]}), "
                           f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    return m


def load(loader, d, model_dir):
    if loader == "hf-gptqmodel" or loader == "hf-ct":
        return hf_load(d)
    if loader == "hf-defuser":
        import defuser
        defuser.replace_fused_blocks(model_type(d))
        if model_type(d) == "mixtral":
            return hf_load(d, key_mapping=MIXTRAL_EXPERT_NAMES)
        return hf_load(d)
    if loader == "gptqmodel-fp32":
        from gptqmodel import GPTQModel
        m = GPTQModel.load(d, device="cpu", dtype=torch.float32)
        return m.model if hasattr(m, "model") else m
    if loader == "gptqmodel":
        from gptqmodel import GPTQModel
        # As a user calls it. On CPU GPTQModel computes in bfloat16 (utils/model.py auto_dtype);
        # with dtype=torch.float32 its CPU kernels refuse 3-bit (TorchLinear: fp16/bf16 only)
        # and its fused 4-bit CPU kernel gave garbage on asymmetric BLOOM (measured here).
        m = GPTQModel.load(d, device="cpu")
        return m.model if hasattr(m, "model") else m
    if loader == "hf-autogptq":
        from transformers import AutoModelForCausalLM, GPTQConfig
        cfg = json.load(open(f"{d}/config.json"))["quantization_config"]
        q = GPTQConfig(bits=cfg["bits"], use_exllama=False)
        return AutoModelForCausalLM.from_pretrained(d, device_map="cpu", torch_dtype=torch.float32,
                                                    quantization_config=q)
    if loader == "autogptq":
        from auto_gptq import AutoGPTQForCausalLM
        m = AutoGPTQForCausalLM.from_quantized(d, device="cpu", torch_dtype=torch.float32,
                                               disable_exllama=True, disable_exllamav2=True,
                                               use_triton=False)
        return m.model
    if loader == "ref":
        return reference_model(d, model_dir)
    if loader == "ref-bf16":  # the same weights computed in bfloat16, as GPTQModel does on CPU
        return reference_model(d, model_dir).to(torch.bfloat16)
    raise SystemExit(f"unknown loader {loader}")


def unpack_rows(packed, n, bits):
    w = packed.to(torch.int64) & 0xFFFFFFFF
    out = torch.zeros((n,) + tuple(packed.shape[1:]), dtype=torch.int64)
    for k in range(n):
        q, s = divmod(k * bits, 32)
        v = w[q] >> s
        if s + bits > 32:
            v = v | (w[q + 1] << (32 - s))
        out[k] = v & ((1 << bits) - 1)
    return out


def dequantized(t, base, bits):
    """The weight [out, in] a gptq_v2 layer dequantizes to: scales[g_idx] * (q - zero)."""
    qw, qz = t[base + "qweight"], t[base + "qzeros"]
    scales, g_idx = t[base + "scales"].float(), t[base + "g_idx"].long()
    cols, rows = qw.shape[0] * 32 // bits, qw.shape[1]
    q = unpack_rows(qw, cols, bits)                    # [in, out]
    z = unpack_rows(qz.T, rows, bits).T                # [groups, out], v2: as is
    return (scales[g_idx] * (q - z[g_idx]).float()).T.contiguous()


def moe_reference_model(d, model_dir, t, bits):
    """The original files with every quantized weight replaced, loaded as any checkpoint."""
    import os
    import shutil
    import tempfile
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM
    orig = load_file(f"{model_dir}/model.safetensors")
    n = 0
    for k in t:
        if k.endswith(".qweight"):
            base = k[:-len("qweight")]
            assert base + "weight" in orig, base + "weight"
            orig[base + "weight"] = dequantized(t, base, bits)
            n += 1
    assert n > 0
    tmp = tempfile.mkdtemp(prefix="peer-ref-")
    try:
        save_file(orig, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        shutil.copy(os.path.join(model_dir, "config.json"), tmp)
        return AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32)
    finally:
        shutil.rmtree(tmp)


def reference_model(d, model_dir):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
    qc = json.load(open(f"{d}/quantize_config.json"))
    assert qc.get("checkpoint_format") == "gptq_v2", "ref reads a gptq_v2 export"
    bits = qc["bits"]
    t = load_file(f"{d}/model.safetensors")
    if model_type(d) in MOE_TYPES:
        return moe_reference_model(d, model_dir, t, bits)
    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    sd = m.state_dict()
    n = 0
    for k in list(t):
        if not k.endswith(".qweight"):
            continue
        base = k[:-len("qweight")]
        name = base + "weight"
        assert name in sd, name
        sd[name].copy_(dequantized(t, base, bits))
        if base + "bias" in t:
            sd[base + "bias"].copy_(t[base + "bias"].float())
        n += 1
    assert n > 0
    return m


@torch.no_grad()
def perplexity(model, ids, seqlen, batch=16):
    n = len(ids) // seqlen
    toks = torch.tensor(ids[:n * seqlen], dtype=torch.long).view(n, seqlen)
    losses = []
    for i in range(0, n, batch):
        b = toks[i:i + batch]
        logits = model(input_ids=b, use_cache=False).logits.float()
        lp = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1), reduction="none")
        losses.append(lp.view(b.shape[0], -1).mean(dim=1))
    nll = torch.cat(losses).double()
    return n, float(torch.exp(nll.mean()))


@torch.no_grad()
def greedy(model, tok, n_new=24):
    ids = tok.encode(PROMPT).ids
    x = torch.tensor([ids], dtype=torch.long)
    out = []
    for _ in range(n_new):
        nxt = int(model(input_ids=x, use_cache=False).logits[0, -1].float().argmax())
        out.append(nxt)
        x = torch.cat([x, torch.tensor([[nxt]])], dim=1)
    return out, tok.decode(out)


def run_one(loader, d, model_dir, out, ids, seqlen, tok, logs, vers):
    logs.seek(0)
    logs.truncate()
    t0 = time.time()
    try:
        model = load(loader, d, model_dir)
    except Exception as e:  # a refusal: its message is the result
        json.dump({"loader": loader, "refused": f"{type(e).__name__}: {e}", "versions": vers},
                  open(out, "w"), indent=1)
        print(f"{loader} {d}: refused: {type(e).__name__}: {e}", flush=True)
        return
    try:
        model.eval()
        t_load = time.time() - t0
        t0 = time.time()
        n, ppl = perplexity(model, ids, seqlen)
        g_ids, g_text = greedy(model, tok)
    except Exception as e:
        json.dump({"loader": loader, "crashed": f"{type(e).__name__}: {e}", "versions": vers},
                  open(out, "w"), indent=1)
        print(f"{loader} {d}: crashed: {type(e).__name__}: {e}", flush=True)
        return
    warn = [l for l in logs.getvalue().splitlines()
            if "unknown parameter" in l.lower() or "ignoring" in l.lower()]
    res = {"loader": loader, "ppl": ppl, "windows": n, "greedy": g_ids, "greedy_text": g_text,
           "versions": vers, "config_warnings": warn, "load_s": round(t_load, 1),
           "eval_s": round(time.time() - t0, 1),
           "dtype": str(next(model.parameters()).dtype)}
    json.dump(res, open(out, "w"), indent=1)
    print(f"{loader} {d}: ppl {ppl:.6f} over {n} windows; greedy {g_text!r}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("loader")
    ap.add_argument("--jobs", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--seqlen", type=int, default=128)
    a = ap.parse_args()
    from tokenizers import Tokenizer
    torch.manual_seed(0)
    logs = capture_logs()
    vers = versions(["torch", "transformers", "optimum", "gptqmodel", "auto-gptq",
                     "compressed-tensors", "accelerate"])
    text = open(a.text, encoding="utf-8").read()
    for line in open(a.jobs):
        if not line.strip():
            continue
        d, out, model_dir = line.split()
        tok = Tokenizer.from_file(f"{d}/tokenizer.json")
        ids = tok.encode(text).ids
        run_one(a.loader, d, model_dir, out, ids, a.seqlen, tok, logs, vers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
