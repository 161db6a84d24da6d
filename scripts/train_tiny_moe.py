#!/usr/bin/env python3
"""Train models/tiny-moe: a small Qwen2-MoE on Jane Austen, on one CPU core, in minutes.

Issue 19 item 7's quality table needs a mixture of experts whose experts specialize (a random
one's router sends tokens anywhere); this is it. The model is transformers' own
Qwen2MoeForCausalLM: 4 layers, hidden 64, 4 heads / 2 KV heads (head_dim 16), 8 routed experts
of intermediate size 64 with the top 2 chosen per token (norm_topk_prob false, Qwen's
default), a shared expert of 128 behind its sigmoid gate, vocab 4096 (the tokenizer of
models/tiny-bloom, copied byte for byte, so the calibration and evaluation texts tokenize to
the same ids as for the other tiny models), the LM head tied to the embedding (the 4 MB cap),
RMSNorm eps 1e-6, rope_theta 1e6, bias on q/k/v (Qwen2's), fp32. The router's auxiliary load-balancing loss is added to the
training loss (router_aux_loss_coef 0.01, output_router_logits), as Qwen trains it, so the
experts share the tokens instead of one taking them all.

Trained from transformers' initialization on data/austen-train.txt only, with
scripts/train_tiny_bloom.py's helpers (seeded random windows, AdamW, warmup then cosine decay,
clipping, weight decay on matrices). Deterministic: fixed --seed, one thread,
torch.use_deterministic_algorithms. --minutes is a safety cap (reported when it stops a run).

At the end it saves with save_pretrained(safe_serialization=True) (transformers 5 writes the
experts back one tensor per expert and projection, as released Qwen2-MoE checkpoints store
them), reloads it and reports perplexity with the GPTQ paper's protocol on
data/austen-eval.txt (held out) and how the routed tokens spread over the experts of each
block on it.

Regenerate the committed model, from the repository root (the model card
models/tiny-moe/README.md has the log's numbers and the sha256):
    python3 -m venv /tmp/venv-tf5
    /tmp/venv-tf5/bin/pip install torch==2.15.0 transformers==5.25.0 safetensors==0.8.0 tokenizers==0.23.3
    /tmp/venv-tf5/bin/python scripts/train_tiny_moe.py
Writes models/tiny-moe/config.json, model.safetensors (refused above 4 MB) and tokenizer.json.
"""
import argparse
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_tiny_bloom import (  # noqa: E402
    add_schedule_args, lr_at, param_groups, perplexity, tokenize_file)

ROOT = Path(__file__).resolve().parent.parent
VOCAB_SIZE = 4096
EXPERTS, TOP_K = 8, 2
MAX_BYTES = 4_000_000


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models/tiny-moe")
    ap.add_argument("--tokenizer", type=Path, default=ROOT / "models/tiny-bloom/tokenizer.json")
    ap.add_argument("--train-text", type=Path, default=ROOT / "data/austen-train.txt")
    ap.add_argument("--eval-text", type=Path, default=ROOT / "data/austen-eval.txt")
    add_schedule_args(ap, batch=16, steps=1200, lr=1e-2, minutes=25.0)
    ap.add_argument("--aux", type=float, default=0.01, help="router load-balancing loss weight")
    return ap.parse_args()


def make_model(args: argparse.Namespace) -> Qwen2MoeForCausalLM:
    cfg = Qwen2MoeConfig(
        vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        tie_word_embeddings=True, attention_dropout=0.0, num_experts=EXPERTS,
        num_experts_per_tok=TOP_K, moe_intermediate_size=64, shared_expert_intermediate_size=128,
        norm_topk_prob=False, output_router_logits=True, router_aux_loss_coef=args.aux,
        use_sliding_window=False, bos_token_id=1, eos_token_id=2, pad_token_id=3,
        dtype="float32")
    cfg._attn_implementation = "eager"
    return Qwen2MoeForCausalLM(cfg).float()


def train(model, ids: torch.Tensor, args: argparse.Namespace) -> dict:
    model.train()
    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr,
                            betas=(0.9, args.beta2), eps=1e-8)
    offsets = torch.arange(args.seqlen + 1)
    t0 = time.time()
    loss_sum, loss_n, losses, step = 0.0, 0, [], 0
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        starts = torch.randint(0, ids.numel() - args.seqlen - 1, (args.batch,), generator=gen)
        win = ids[starts.view(-1, 1) + offsets]
        out = model(input_ids=win[:, :-1], use_cache=False, output_router_logits=True)
        lm = F.cross_entropy(out.logits.reshape(-1, VOCAB_SIZE), win[:, 1:].reshape(-1))
        loss = lm + args.aux * out.aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        loss_sum += lm.item()
        loss_n += 1
        losses.append(lm.item())
        last = step + 1 == args.steps
        over = time.time() - t0 > args.minutes * 60
        if (step + 1) % args.log_every == 0 or last or over:
            print(f"step {step + 1:5d}/{args.steps}  loss {loss_sum / loss_n:.4f}  "
                  f"aux {out.aux_loss.item():.3f}  lr {lr_at(step, args):.2e}  "
                  f"{time.time() - t0:5.0f} s", flush=True)
            loss_sum, loss_n = 0.0, 0
        if over and not last:
            print(f"WARNING: stopped by --minutes {args.minutes} after {step + 1} of {args.steps}"
                  " steps; this model depends on the machine's speed", flush=True)
            break
    tail = losses[-min(len(losses), 50):]
    return {"steps": step + 1, "seconds": time.time() - t0, "final": sum(tail) / len(tail)}


def expert_load(model, ids: torch.Tensor, seqlen: int) -> None:
    """The share of the routed (token, expert) choices each expert gets, per block."""
    model.eval()
    n = (ids.numel() // seqlen) * seqlen
    x = ids[:n].view(-1, seqlen)[:32]
    with torch.no_grad():
        out = model(input_ids=x, use_cache=False, output_router_logits=True)
    for i, logits in enumerate(out.router_logits):
        top = torch.topk(logits, TOP_K, dim=-1).indices.flatten()
        share = torch.bincount(top, minlength=EXPERTS).float() / top.numel()
        print(f"block {i} expert load: " + " ".join(f"{s:.3f}" for s in share.tolist()))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    tok = Tokenizer.from_file(str(args.tokenizer))
    train_ids = tokenize_file(tok, args.train_text)
    model = make_model(args)
    print(f"Qwen2MoeForCausalLM: {sum(p.numel() for p in model.parameters())} parameters; "
          f"{args.steps} steps x {args.batch} x {args.seqlen} tokens", flush=True)
    stats = train(model, train_ids, args)
    print(f"trained {stats['steps']} steps in {stats['seconds'] / 60:.1f} min; final train "
          f"loss {stats['final']:.4f}", flush=True)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    model.config.output_router_logits = False
    model.save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)
    shutil.copyfile(args.tokenizer, out / "tokenizer.json")
    st = out / "model.safetensors"
    if st.stat().st_size > MAX_BYTES:
        st.unlink()
        raise SystemExit(f"error: model.safetensors would be more than {MAX_BYTES:,} bytes")
    print(f"sha256 of model.safetensors: {hashlib.sha256(st.read_bytes()).hexdigest()}")
    saved = Qwen2MoeForCausalLM.from_pretrained(out)
    eval_ids = tokenize_file(tok, args.eval_text)
    print(f"perplexity {args.eval_text.name} ({eval_ids.numel()} tokens, held out): "
          f"{perplexity(saved, eval_ids, args.seqlen, args.eval_batch):.3f}", flush=True)
    expert_load(saved, eval_ids, args.seqlen)


if __name__ == "__main__":
    main()
