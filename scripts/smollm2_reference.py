#!/usr/bin/env python3
"""transformers' perplexity of a Llama-family HF folder (SmolLM2-135M) on a text, as JSON, for
gptqd's eval to be compared against.

    source scripts/python-env.sh
    "$GPTQD_PYTHON" scripts/get_smollm2.py                      # models-local/smollm2-135m
    "$GPTQD_PYTHON" scripts/smollm2_reference.py models-local/smollm2-135m data/austen-eval.txt \\
        --chars 20000 --seqlen 512 --out models-local/smollm2-135m-reference.json

The protocol is make_fixtures.py's perplexity fixture (the GPTQ paper's, IST-DASLab/gptq
bloom_eval) unchanged:
  text    the file's bytes decoded as UTF-8 (no newline translation, as gptqd reads it), cut to
          its first --chars characters (all of it with --chars 0)
  tokens  AutoTokenizer(folder)(text, add_special_tokens=False).input_ids: no BOS and no EOS,
          as gptqd's tokenizer encodes (SmolLM2's post-processor would add none anyway; the
          script checks that both calls agree and that the raw tokenizers.Tokenizer agrees)
  windows nwindows = len(tokens) // seqlen non-overlapping windows tokens[w*seqlen:(w+1)*seqlen];
          the remainder is dropped
  nll     per window: torch.nn.CrossEntropyLoss() (the mean) over the window's seqlen-1
          next-token predictions, LlamaForCausalLM in float32 on the CPU, eval mode,
          use_cache=False, no attention mask, one thread (a fixed summation order)
  ppl     exp(sum(window_nll * seqlen) / (nwindows * seqlen)), computed in torch fp32
The JSON: model (folder), config (its config.json), text_file, chars, text, add_special_tokens
(false), bos_added (false: the tokens hold no BOS), add_special_tokens_true_adds_tokens (false
for SmolLM2: its ByteLevel post-processor adds nothing), tokens, seqlen, nwindows, window_nll
(the float64 of each fp32 loss), ppl, versions (torch, transformers, tokenizers),
attn_implementation, threads, seconds.
Measured (transformers 4.36.2, torch 1.13, eager attention, 1 thread): 20,000 characters of
data/austen-eval.txt -> 4912 tokens; seqlen 512: 9 windows, ppl 30.517067 (~35 s on 2 cores);
1024: 4 windows, 28.054100; 2048: 2 windows, 26.129036; 4096: 1 window, 24.990103.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from ppl_protocol import window_nlls  # scripts/ppl_protocol.py
import transformers
import tokenizers
from transformers import AutoTokenizer, LlamaForCausalLM


def perplexity(model, tokens, seqlen, log):
    """make_fixtures.py's protocol (scripts/ppl_protocol.py), window by window."""
    window_nll, ppl = window_nlls(model, tokens, seqlen, log)
    return len(window_nll), window_nll, ppl.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="HF folder (config.json, model.safetensors, "
                    "tokenizer.json), e.g. models-local/smollm2-135m")
    ap.add_argument("text", type=Path, help="UTF-8 text file, e.g. data/austen-eval.txt")
    ap.add_argument("--chars", type=int, default=20000,
                    help="use the first CHARS characters (0: all; default 20000)")
    ap.add_argument("--seqlen", type=int, default=512, help="window length in tokens (512)")
    ap.add_argument("--out", type=Path, required=True, help="the JSON to write")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: the same summation order on any machine)")
    a = ap.parse_args()
    t0 = time.time()

    def log(msg):
        print(f"[smollm2_reference {time.time() - t0:6.1f}s] {msg}", flush=True)

    if transformers.__version__ != "4.36.2":
        log(f"warning: transformers {transformers.__version__}; python-env.sh pins 4.36.2")
    torch.set_num_threads(a.threads)

    text = a.text.read_bytes().decode("utf-8")
    if a.chars > 0:
        text = text[:a.chars]

    tok = AutoTokenizer.from_pretrained(str(a.model))
    ids = tok(text, add_special_tokens=False).input_ids
    # gptqd encodes with add_special_tokens=False; check that SmolLM2 would add nothing anyway,
    # and that transformers' wrapper and the raw tokenizer.json agree id for id.
    with_special = tok(text, add_special_tokens=True).input_ids
    raw = tokenizers.Tokenizer.from_file(str(a.model / "tokenizer.json")).encode(
        text, add_special_tokens=False).ids
    if ids != raw:
        sys.exit("smollm2_reference: AutoTokenizer and tokenizers.Tokenizer disagree")
    bos_added = with_special != ids
    log(f"{len(text)} characters -> {len(ids)} tokens ({type(tok).__name__}; "
        f"add_special_tokens=True {'adds tokens' if bos_added else 'adds nothing'}; "
        f"raw tokenizer.json agrees)")
    if len(ids) < a.seqlen:
        sys.exit(f"smollm2_reference: {len(ids)} tokens, fewer than one window of {a.seqlen}")

    model = LlamaForCausalLM.from_pretrained(str(a.model), torch_dtype=torch.float32)
    model.eval()
    attn = getattr(model.config, "_attn_implementation", "eager")
    log(f"loaded {a.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M "
        f"parameters, attention {attn})")

    tokens = torch.tensor([ids], dtype=torch.long)
    nwin, window_nll, ppl = perplexity(model, tokens, a.seqlen, log)
    log(f"perplexity {ppl:.6f} over {nwin} windows of {a.seqlen} "
        f"({len(ids) - nwin * a.seqlen} tokens dropped)")

    out = {
        "model": str(a.model),
        "config": json.loads((a.model / "config.json").read_text()),
        "text_file": str(a.text),
        "chars": len(text),
        "text": text,
        "add_special_tokens": False,
        "bos_added": False,
        "add_special_tokens_true_adds_tokens": bos_added,
        "tokens": ids,
        "seqlen": a.seqlen,
        "nwindows": nwin,
        "window_nll": window_nll,
        "ppl": ppl,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
        "attn_implementation": attn,
        "threads": a.threads,
        "seconds": round(time.time() - t0, 1),
    }
    assert all(math.isfinite(x) for x in window_nll)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
