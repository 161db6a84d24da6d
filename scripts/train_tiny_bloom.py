#!/usr/bin/env python3
"""Train tiny-bloom, the repository's default model: a small BLOOM on Jane Austen, on CPU.

The model is transformers' BloomForCausalLM (4 blocks, hidden 256, 8 heads, vocab 4096 = the
tokenizer's size, fp32, bos/eos/pad 1/2/3) trained from scratch on data/austen-train.txt only,
with the byte-level BPE models/tiny-bloom/tokenizer.json (scripts/make_tokenizer.py; this script
reads it and never changes it). data/austen-eval.txt is held out: it is only read at the end, to
report perplexity, and nothing (steps, learning rate) was tuned on it.

Training: random windows of --seqlen + 1 tokens drawn from the tokenized training text with a
seeded generator (inputs are the first seqlen tokens, targets the next ones), AdamW, linear warmup
then cosine decay to --min-lr-ratio of the peak rate, gradient clipping. The forward used for
training is a compact copy of BLOOM's (fused GELU, no dropout calls, one precomputed ALiBi+causal
bias) acting on the BloomForCausalLM's own parameters; before training it is checked against
transformers' forward, so what is trained is exactly what transformers computes.

At the end the model is saved with save_pretrained(safe_serialization=True) (config.json with
BLOOM's keys, model.safetensors with "transformer." names, the tied lm_head omitted), reloaded
with from_pretrained, and evaluated with transformers' own forward, with the GPTQ paper's
protocol: the whole text tokenized at once, cut into non-overlapping windows of --seqlen tokens,
ppl = exp(mean window loss). It reports the held-out Austen text, a prefix of the King James
Bible (out of domain), and the same Austen perplexity with the blocks' linear layers rounded to
nearest (RTN, the GPTQ quantizer, asymmetric, per row and group of 128 input columns) at 4 and
3 bits, to show how sensitive the model is to quantization.

Deterministic given --seed, --steps and the thread count (the run pins its threads): the same
command gives the same bytes (two 30-step runs wrote identical model.safetensors). --minutes is
only a safety cap; a run stopped by it says so, and its model depends on the machine's speed.

Regenerate the committed model (training took 18 minutes on 2 cores shared with compiler jobs,
evaluation 2 more; the model card models/tiny-bloom/README.md has the log's numbers):
    source scripts/python-env.sh
    "$GPTQD_PYTHON" scripts/train_tiny_bloom.py
Outputs: models/tiny-bloom/config.json and models/tiny-bloom/model.safetensors (the same bytes,
sha256 in the model card, with the same torch/BLAS build on the same kind of CPU; elsewhere the
rounding of the BLAS kernels differs and so do the last digits), and the progress and
perplexities on stdout.
"""
import argparse
import math
import os
import sys
import time
from pathlib import Path

# Pin the BLAS/OpenMP pools before torch starts them: a fixed thread count keeps the
# floating-point reduction order (and so the result) reproducible. Passive waiting matters on a
# shared machine: with spinning OpenMP/OpenBLAS threads a step ran 9x slower when other builds
# held the cores (a descheduled thread stalls every parallel region).
# Only when run as a script: scripts/train_tiny_llama.py imports the helpers below and pins its
# own pools.
def pin_threads(default: str) -> None:
    """OMP/OpenBLAS/MKL pools of --threads (else `default`) threads, waiting passively."""
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    threads = default
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            threads = sys.argv[i + 1]
        elif a.startswith("--threads="):
            threads = a.split("=", 1)[1]
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = threads


if __name__ == "__main__":
    pin_threads("2")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import BloomConfig, BloomForCausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VOCAB_SIZE = 4096
QUANT_GROUP = 128  # RTN check: group of input columns, as in the quick start's g128 runs


def add_schedule_args(ap: argparse.ArgumentParser, *, batch: int, steps: int, lr: float,
                      minutes: float) -> None:
    """The training schedule's options, shared by the tiny models' training scripts."""
    ap.add_argument("--seqlen", type=int, default=128)
    ap.add_argument("--batch", type=int, default=batch, help="windows per step")
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--lr", type=float, default=lr, help="peak learning rate")
    ap.add_argument("--min-lr-ratio", type=float, default=0.1, help="final lr / peak lr")
    ap.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--beta2", type=float, default=0.98)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient norm clip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=minutes,
                    help="safety cap on training wall time; stopping early is reported")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--eval-batch", type=int, default=32, help="windows per eval forward")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models/tiny-bloom")
    ap.add_argument("--tokenizer", type=Path, default=ROOT / "models/tiny-bloom/tokenizer.json")
    ap.add_argument("--train-text", type=Path, default=ROOT / "data/austen-train.txt")
    ap.add_argument("--eval-text", type=Path, default=ROOT / "data/austen-eval.txt")
    ap.add_argument("--ood-text", type=Path, default=ROOT / "data/kjv.txt")
    ap.add_argument("--ood-bytes", type=int, default=400_000,
                    help="prefix of --ood-text evaluated (bytes, cut after a newline)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    add_schedule_args(ap, batch=8, steps=2400, lr=4e-3, minutes=28.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-rtn-check", action="store_true", help="skip the RTN 4/3-bit evals")
    return ap.parse_args()


def tokenize_file(tok: Tokenizer, path: Path, max_bytes: int = 0) -> torch.Tensor:
    """All of the file (or its first max_bytes, cut after a newline) as one id sequence."""
    data = path.read_bytes()
    if max_bytes and len(data) > max_bytes:
        data = data[: data.index(b"\n", max_bytes) + 1]
    return torch.tensor(tok.encode(data.decode("utf-8")).ids, dtype=torch.long)


def make_model(args: argparse.Namespace) -> BloomForCausalLM:
    cfg = BloomConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=args.hidden,
        n_layer=args.layers,
        n_head=args.heads,
        layer_norm_epsilon=1e-5,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        apply_residual_connection_post_layernorm=False,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        torch_dtype="float32",
    )
    cfg.architectures = ["BloomForCausalLM"]
    return BloomForCausalLM(cfg)  # transformers' init: normal(0, 0.02), LN 1/0, biases 0


def alibi_causal_bias(n_head: int, seqlen: int) -> torch.Tensor:
    """[n_head, seqlen, seqlen]: slope_h * key_position, -inf above the diagonal (BLOOM's ALiBi;
    softmax is shift invariant per row, so this equals transformers' bias)."""
    p = 2 ** math.floor(math.log2(n_head))
    slopes = [2.0 ** (-8.0 * i / p) for i in range(1, p + 1)]
    slopes += [2.0 ** (-4.0 * k / p) for k in range(1, 2 * (n_head - p), 2)]
    pos = torch.arange(seqlen, dtype=torch.float32)
    bias = torch.tensor(slopes).view(n_head, 1, 1) * pos.view(1, 1, seqlen)
    mask = torch.ones(seqlen, seqlen, dtype=torch.bool).triu(1)
    return bias.expand(n_head, seqlen, seqlen).masked_fill(mask, float("-inf")).contiguous()


def fast_logits(model: BloomForCausalLM, ids: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """BLOOM's forward for training: the same math as transformers' with fewer, fused ops."""
    tr, cfg = model.transformer, model.config
    b, t = ids.shape
    nh, hd, eps = cfg.n_head, cfg.hidden_size // cfg.n_head, cfg.layer_norm_epsilon
    ln = lambda x, m: F.layer_norm(x, m.normalized_shape, m.weight, m.bias, eps)  # noqa: E731
    h = ln(F.embedding(ids, tr.word_embeddings.weight), tr.word_embeddings_layernorm)
    for blk in tr.h:
        att = blk.self_attention
        qkv = F.linear(ln(h, blk.input_layernorm), att.query_key_value.weight,
                       att.query_key_value.bias).view(b, t, nh, 3, hd)
        q, k, v = (qkv[:, :, :, i].transpose(1, 2) for i in range(3))  # [b, nh, t, hd]
        s = torch.matmul(q, k.transpose(-1, -2)).mul_(1.0 / math.sqrt(hd)).add_(bias[:, :t, :t])
        ctx = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(b, t, nh * hd)
        h = h + F.linear(ctx, att.dense.weight, att.dense.bias)
        mlp = blk.mlp
        m = F.gelu(F.linear(ln(h, blk.post_attention_layernorm), mlp.dense_h_to_4h.weight,
                            mlp.dense_h_to_4h.bias), approximate="tanh")
        h = h + F.linear(m, mlp.dense_4h_to_h.weight, mlp.dense_4h_to_h.bias)
    return F.linear(ln(h, tr.ln_f), tr.word_embeddings.weight)


def check_fast_forward(model: BloomForCausalLM, bias: torch.Tensor, ids: torch.Tensor) -> float:
    """Relative max error of fast_logits against transformers' forward; fails above 1e-4."""
    model.eval()
    with torch.no_grad():
        ref = model(input_ids=ids, use_cache=False).logits
        got = fast_logits(model, ids, bias)
    err = ((got - ref).abs().max() / ref.abs().max()).item()
    if not err <= 1e-4:
        raise SystemExit(f"train_tiny_bloom: the training forward differs from transformers' "
                         f"(relative error {err:.2e})")
    return err


def lr_at(step: int, args: argparse.Namespace) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    frac = (step - args.warmup) / max(1, args.steps - args.warmup)
    cos = 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
    return args.lr * (args.min_lr_ratio + (1.0 - args.min_lr_ratio) * cos)


def param_groups(model: BloomForCausalLM, weight_decay: float) -> list:
    """Weight decay on matrices (linear weights, the tied embedding); none on biases and norms."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def train(model: BloomForCausalLM, ids: torch.Tensor, args: argparse.Namespace) -> dict:
    bias = alibi_causal_bias(model.config.n_head, args.seqlen)
    err = check_fast_forward(model, bias, ids[: 2 * args.seqlen].view(2, args.seqlen))
    print(f"training forward matches transformers' (relative error {err:.1e})", flush=True)
    model.train()
    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr,
                            betas=(0.9, args.beta2), eps=1e-8)
    offsets = torch.arange(args.seqlen + 1)
    tokens_per_step = args.batch * args.seqlen
    t0 = time.time()
    t_log, loss_sum, loss_n, losses = t0, 0.0, 0, []
    step = 0
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        starts = torch.randint(0, ids.numel() - args.seqlen - 1, (args.batch,), generator=gen)
        win = ids[starts.view(-1, 1) + offsets]  # [batch, seqlen + 1]
        logits = fast_logits(model, win[:, :-1], bias)
        loss = F.cross_entropy(logits.view(-1, VOCAB_SIZE), win[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        loss_sum += loss.item()
        loss_n += 1
        losses.append(loss.item())
        last = step + 1 == args.steps
        over = time.time() - t0 > args.minutes * 60
        if (step + 1) % args.log_every == 0 or last or over:
            now = time.time()
            tps = loss_n * tokens_per_step / (now - t_log)
            print(f"step {step + 1:5d}/{args.steps}  loss {loss_sum / loss_n:.4f}  "
                  f"lr {lr_at(step, args):.2e}  {tps:5.0f} tok/s  {now - t0:5.0f} s  "
                  f"eta {(now - t0) / (step + 1) * (args.steps - step - 1):5.0f} s", flush=True)
            t_log, loss_sum, loss_n = now, 0.0, 0
        if over and not last:
            print(f"WARNING: stopped by --minutes {args.minutes} after {step + 1} of {args.steps}"
                  " steps; this model depends on the machine's speed", flush=True)
            break
    tail = losses[-min(len(losses), 50):]
    return {"steps": step + 1, "seconds": time.time() - t0,
            "final_train_loss": sum(tail) / len(tail), "tokens": (step + 1) * tokens_per_step}


@torch.no_grad()
def perplexity(model: BloomForCausalLM, ids: torch.Tensor, seqlen: int, batch: int) -> float:
    """The GPTQ paper's protocol with transformers' forward: non-overlapping windows of seqlen
    tokens (the tail shorter than a window is dropped), loss of a window = mean cross-entropy
    of its seqlen - 1 next-token predictions, ppl = exp(mean window loss)."""
    model.eval()
    n = ids.numel() // seqlen
    windows = ids[: n * seqlen].view(n, seqlen)
    total = 0.0
    for i in range(0, n, batch):
        w = windows[i: i + batch]
        logits = model(input_ids=w, use_cache=False).logits[:, :-1]
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), w[:, 1:].reshape(-1),
                               reduction="none").view(w.size(0), -1).mean(dim=1)
        total += loss.double().sum().item()
    return math.exp(total / n)


def rtn_quantize_(w: torch.Tensor, bits: int, group: int) -> None:
    """Round to nearest in place with the GPTQ quantizer: asymmetric, per row and group of
    `group` input columns; the range is widened to include 0; scale = (max - min) / maxq,
    zero = round(-min / scale), code = clamp(round(w / scale) + zero, 0, maxq)."""
    maxq = 2**bits - 1
    rows, cols = w.shape
    g = w.view(rows, cols // group, group)
    xmin = g.amin(dim=2, keepdim=True).clamp(max=0)
    xmax = g.amax(dim=2, keepdim=True).clamp(min=0)
    same = xmin == xmax
    xmin, xmax = torch.where(same, -1.0, xmin), torch.where(same, 1.0, xmax)
    scale = (xmax - xmin) / maxq
    zero = torch.round(-xmin / scale)
    q = torch.clamp(torch.round(g / scale) + zero, 0, maxq)
    g.copy_(scale * (q - zero))


def rtn_model(path: Path, bits: int) -> BloomForCausalLM:
    model = BloomForCausalLM.from_pretrained(path)
    with torch.no_grad():
        for blk in model.transformer.h:
            for lin in (blk.self_attention.query_key_value, blk.self_attention.dense,
                        blk.mlp.dense_h_to_4h, blk.mlp.dense_4h_to_h):
                rtn_quantize_(lin.weight, bits, QUANT_GROUP)
    return model


def save(model: BloomForCausalLM, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    # save_pretrained also writes generation_config.json; the C++ reader needs only these two.
    (out / "generation_config.json").unlink(missing_ok=True)
    for name in ("config.json", "model.safetensors"):
        print(f"{out / name}: {(out / name).stat().st_size} bytes")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    tok = Tokenizer.from_file(str(args.tokenizer))
    if tok.get_vocab_size() != VOCAB_SIZE:
        raise SystemExit(f"{args.tokenizer}: vocabulary {tok.get_vocab_size()}, expected "
                         f"{VOCAB_SIZE}")
    train_ids = tokenize_file(tok, args.train_text)
    print(f"{args.train_text}: {train_ids.numel()} tokens; training {args.steps} steps x "
          f"{args.batch} windows x {args.seqlen} tokens "
          f"({args.steps * args.batch * args.seqlen / train_ids.numel():.2f} epochs)", flush=True)

    model = make_model(args)
    print(f"BloomForCausalLM: {sum(p.numel() for p in model.parameters())} parameters, "
          f"{args.threads} threads, seed {args.seed}", flush=True)
    stats = train(model, train_ids, args)
    print(f"trained {stats['steps']} steps ({stats['tokens']} tokens) in "
          f"{stats['seconds'] / 60:.1f} min; final train loss {stats['final_train_loss']:.4f} "
          f"(mean of the last 50 steps)", flush=True)
    save(model, args.out)

    t_eval = time.time()
    saved = BloomForCausalLM.from_pretrained(args.out)
    eval_ids = tokenize_file(tok, args.eval_text)
    ood_ids = tokenize_file(tok, args.ood_text, args.ood_bytes)
    ppl_eval = perplexity(saved, eval_ids, args.seqlen, args.eval_batch)
    print(f"perplexity {args.eval_text.name} ({eval_ids.numel()} tokens, held out): "
          f"{ppl_eval:.3f}", flush=True)
    ppl_ood = perplexity(saved, ood_ids, args.seqlen, args.eval_batch)
    print(f"perplexity {args.ood_text.name} (first {ood_ids.numel()} tokens, out of domain): "
          f"{ppl_ood:.3f}", flush=True)
    if not args.no_rtn_check:
        for bits in (4, 3):
            ppl = perplexity(rtn_model(args.out, bits), eval_ids, args.seqlen, args.eval_batch)
            print(f"perplexity {args.eval_text.name}, RTN {bits}-bit g{QUANT_GROUP} asym: "
                  f"{ppl:.3f} ({ppl / ppl_eval:.3f}x the original)", flush=True)
    print(f"evaluation took {(time.time() - t_eval) / 60:.1f} min")


if __name__ == "__main__":
    main()
