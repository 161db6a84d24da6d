#!/usr/bin/env python3
"""Train models/tiny-llama: a small Llama on Jane Austen, on one CPU core, in a few minutes.

The model is transformers' LlamaForCausalLM: 4 layers, hidden 64, 4 heads / 2 KV heads
(head_dim 16), FFN 160 (SiLU-gated; a multiple of 32, so every bit width packs in the GPTQ
export, but not of 64 or 128: down_proj's last quantization group is short at groups 64 and
128), vocab 4096, untied LM head, RMSNorm eps 1e-5, rope_theta 10000, no biases, bos/eos/pad
1/2/3, fp32. It uses the tokenizer of models/tiny-bloom (tokenizer.json is copied byte for
byte), so the calibration and evaluation texts tokenize to the same ids for both models.

Trained from transformers' own initialization (normal(0, 0.02), norms 1) on
data/austen-train.txt only, as scripts/train_tiny_bloom.py trains tiny-bloom and with its
helpers: random windows of --seqlen + 1 tokens from a seeded generator, AdamW, linear warmup
then cosine decay to --min-lr-ratio of the peak rate, gradient clipping, weight decay on
matrices only. The training forward is transformers' own (eager attention). A trained model
rather than a random one: a random model's next-token logits are near ties (perplexity ~6700
with 4096 tokens), so any summation-order difference between two correct loaders flips its
greedy text; a trained model's are not.

At the end it saves with save_pretrained(safe_serialization=True), reloads with from_pretrained
and reports perplexity with the GPTQ paper's protocol (train_tiny_bloom.perplexity: windows of
--seqlen, exp of the mean window loss) on data/austen-eval.txt (held out, never used for tuning)
and data/austen-eval-20k.txt (its first 20 kB, the text the tests and the peer check use),
and on the eval text with the blocks' linears rounded to nearest (RTN, asym, group 32, as the
tests' runs) at 4 and 3 bits.

Deterministic: fixed --seed, one thread (torch.set_num_threads(1) and the OMP/BLAS pools pinned
before torch starts), torch.use_deterministic_algorithms: two 30-step runs wrote identical
model.safetensors. --minutes is only a safety cap (a run
stopped by it says so, and its model then depends on the machine's speed).

Regenerate the committed model, from the repository root (the model card
models/tiny-llama/README.md has the log's numbers and the sha256):
    source scripts/python-env-hf.sh                 # torch 2.5.1, transformers 4.57.6
    "$GPTQD_HF_PYTHON" scripts/train_tiny_llama.py
Writes models/tiny-llama/config.json, model.safetensors (refused above 4 MB) and tokenizer.json.
"""
import argparse
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

# One thread, pinned before torch starts its pools (see train_tiny_bloom.py).
os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_tiny_bloom import (  # noqa: E402
    add_schedule_args, lr_at, param_groups, perplexity, rtn_quantize_, tokenize_file)

ROOT = Path(__file__).resolve().parent.parent
VOCAB_SIZE = 4096
QUANT_GROUP = 32  # RTN check: the group size of the tests' and the peer check's tiny-llama runs
MAX_BYTES = 4_000_000


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models/tiny-llama")
    ap.add_argument("--tokenizer", type=Path, default=ROOT / "models/tiny-bloom/tokenizer.json")
    ap.add_argument("--train-text", type=Path, default=ROOT / "data/austen-train.txt")
    ap.add_argument("--eval-text", type=Path, default=ROOT / "data/austen-eval.txt")
    ap.add_argument("--eval-20k", type=Path, default=ROOT / "data/austen-eval-20k.txt")
    add_schedule_args(ap, batch=16, steps=1500, lr=1e-2, minutes=20.0)
    return ap.parse_args()


def make_model() -> LlamaForCausalLM:
    cfg = LlamaConfig(
        vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=160, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False,
        mlp_bias=False, attention_dropout=0.0, bos_token_id=1, eos_token_id=2, pad_token_id=3,
        torch_dtype="float32")
    cfg._attn_implementation = "eager"
    return LlamaForCausalLM(cfg).float()  # transformers' init: normal(0, 0.02), norms 1


def train(model: LlamaForCausalLM, ids: torch.Tensor, args: argparse.Namespace) -> dict:
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
        logits = model(input_ids=win[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), win[:, 1:].reshape(-1))
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


def rtn_model(path: Path, bits: int) -> LlamaForCausalLM:
    model = LlamaForCausalLM.from_pretrained(path)
    with torch.no_grad():
        for layer in model.model.layers:
            att, mlp = layer.self_attn, layer.mlp
            for lin in (att.q_proj, att.k_proj, att.v_proj, att.o_proj,
                        mlp.gate_proj, mlp.up_proj, mlp.down_proj):
                rtn_quantize_(lin.weight, bits, QUANT_GROUP)
    return model


def save(model: LlamaForCausalLM, args: argparse.Namespace) -> None:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)  # needed by no one
    shutil.copyfile(args.tokenizer, out / "tokenizer.json")
    st = out / "model.safetensors"
    size = st.stat().st_size
    if size > MAX_BYTES:
        st.unlink()
        raise SystemExit(f"error: model.safetensors would be {size:,} bytes, more than {MAX_BYTES:,}")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        print(f"{out / name}: {(out / name).stat().st_size} bytes")
    print(f"sha256 of model.safetensors: {hashlib.sha256(st.read_bytes()).hexdigest()}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
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

    model = make_model()
    print(f"LlamaForCausalLM: {sum(p.numel() for p in model.parameters())} parameters, "
          f"1 thread, seed {args.seed}", flush=True)
    stats = train(model, train_ids, args)
    print(f"trained {stats['steps']} steps ({stats['tokens']} tokens) in "
          f"{stats['seconds'] / 60:.1f} min; final train loss {stats['final_train_loss']:.4f} "
          f"(mean of the last 50 steps)", flush=True)
    save(model, args)

    t_eval = time.time()
    saved = LlamaForCausalLM.from_pretrained(args.out)
    eval_ids = tokenize_file(tok, args.eval_text)
    ppl_eval = perplexity(saved, eval_ids, args.seqlen, args.eval_batch)
    print(f"perplexity {args.eval_text.name} ({eval_ids.numel()} tokens, held out): "
          f"{ppl_eval:.3f}", flush=True)
    ids_20k = tokenize_file(tok, args.eval_20k)
    print(f"perplexity {args.eval_20k.name} ({ids_20k.numel()} tokens): "
          f"{perplexity(saved, ids_20k, args.seqlen, args.eval_batch):.3f}", flush=True)
    for bits in (4, 3):
        ppl = perplexity(rtn_model(args.out, bits), eval_ids, args.seqlen, args.eval_batch)
        print(f"perplexity {args.eval_text.name}, RTN {bits}-bit g{QUANT_GROUP} asym: "
              f"{ppl:.3f} ({ppl / ppl_eval:.3f}x the original)", flush=True)
    print(f"evaluation took {(time.time() - t_eval) / 60:.1f} min")


if __name__ == "__main__":
    main()
