#!/usr/bin/env python3
"""Golden fixtures for the C++ mixture-of-experts forward (Mixtral, Qwen2-MoE, Qwen3-MoE), made with
transformers' own classes (issue 19 item 7).

Regenerate, from the repository root (deterministic: fixed seeds, CPU, fp32, eval mode, eager
attention, one thread):
    python3 -m venv /tmp/venv-tf5
    /tmp/venv-tf5/bin/pip install torch==2.15.0 transformers==5.25.0 safetensors==0.8.0
    /tmp/venv-tf5/bin/python scripts/make_moe_fixtures.py
The versions are pinned (VERSIONS): transformers 5 fuses the experts into 3-D parameters on load
and save_pretrained writes them back one tensor per expert and projection, as the released
checkpoints store them (block_sparse_moe.experts.E.w1/w2/w3 for Mixtral,
mlp.experts.E.{gate,up,down}_proj for Qwen). The config.json files are 5.x spellings
(rope_parameters, dtype; Qwen3-MoE writes num_local_experts where 4.x wrote num_experts);
tests/unit/test_moe_config.cpp reads the 4.x spellings of the same models.

Writes tests/fixtures/moe/ (the script refuses to write more than 2 MB in all):
  <case>/config.json, <case>/model.safetensors  a tiny random *ForCausalLM (save_pretrained).
      Every parameter is drawn from a seeded torch generator (init_weights): norm weights uniform
      in [0.8, 1.2), biases N(0, 0.1), linear and expert weights N(0, gain/sqrt(fan_in)) (gain
      1.5 for q/k; 3 for the router so that the top-k choice is clear), embeddings N(0, 0.25).
      Cases (vocab 300; every routing margin is checked, see below):
        mixtral      Mixtral, hidden 48, 6 heads / 2 KV, 5 experts of width 24, top-2 (always
                     renormalised), 2 layers, untied, rope_theta 1e6
        qwen2_moe    Qwen2-MoE, hidden 32, 4 heads / 2 KV, 3 experts of width 16, top-1,
                     norm_topk_prob false, shared expert of width 40 with its sigmoid gate,
                     q/k/v biases, 2 layers, tied
        qwen3_moe    Qwen3-MoE, hidden 32, 4 heads / 2 KV, head_dim 24 given, 7 experts of width
                     12, top-3, norm_topk_prob true, per-head q/k RMSNorm, 2 layers, untied
        qwen2_moe_mixed  Qwen2-MoE, 3 layers, decoder_sparse_step 2: blocks 0 and 2 dense
                     (Qwen2MoeMLP of width intermediate_size 40), block 1 MoE (3 experts of
                     width 16, top-2, shared expert of width 24), tied
        qwen3_moe_mixed  Qwen3-MoE, 3 layers, mlp_only_layers [1]: block 1 dense (width 36),
                     blocks 0 and 2 MoE (5 experts of width 12, top-2), head_dim 16, untied
  <case>/forward.safetensors  input_ids I32 [2, 17], embeddings, block.<i> F32 [2, 17, hidden]
      (a forward hook on each decoder layer), logits F32 [2, 17, vocab], as
      make_family_fixtures.py writes them.
  <case>/perplexity.safetensors  the GPTQ paper's perplexity protocol (scripts/ppl_protocol.py):
      101 tokens, windows of 32.

Routing margins: a token whose k-th and (k+1)-th router probabilities are within rounding of each
other could pick a different expert in a correct reimplementation (a different summation order),
and the fixture would then test luck. Every router call of every forward is hooked and the
smallest gap between the k-th and (k+1)-th probability is asserted >= MIN_MARGIN; the gaps are
printed.
"""
import argparse
import math
import shutil
import sys
from pathlib import Path

import torch

from ppl_protocol import perplexity_fixture  # scripts/ppl_protocol.py
import transformers
from safetensors.torch import save_file
from transformers import (MixtralConfig, MixtralForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM,
                          Qwen3MoeConfig, Qwen3MoeForCausalLM)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/fixtures/moe"
VERSIONS = {"transformers": "5.25.0", "torch": "2.15.0"}
MAX_BYTES = 2_000_000
MIN_MARGIN = 2e-5

VOCAB, BATCH, SEQ = 300, 2, 17
PPL_SEQLEN, PPL_TOKENS = 32, 101
COMMON = dict(vocab_size=VOCAB, rms_norm_eps=1e-5, attention_dropout=0.0,
              max_position_embeddings=128, bos_token_id=1, eos_token_id=2, dtype="float32",
              num_hidden_layers=2, rope_parameters={"rope_type": "default", "rope_theta": 1e6})

CASES = {
    "mixtral": (MixtralConfig, MixtralForCausalLM, 51, dict(
        COMMON, hidden_size=48, num_attention_heads=6, num_key_value_heads=2,
        intermediate_size=24, num_local_experts=5, num_experts_per_tok=2,
        tie_word_embeddings=False, sliding_window=None)),
    "qwen2_moe": (Qwen2MoeConfig, Qwen2MoeForCausalLM, 32, dict(
        COMMON, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=40, moe_intermediate_size=16, shared_expert_intermediate_size=40,
        num_experts=3, num_experts_per_tok=1, norm_topk_prob=False, tie_word_embeddings=True,
        use_sliding_window=False)),
    "qwen3_moe": (Qwen3MoeConfig, Qwen3MoeForCausalLM, 43, dict(
        COMMON, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=24,
        intermediate_size=40, moe_intermediate_size=12, num_experts=7, num_experts_per_tok=3,
        norm_topk_prob=True, attention_bias=False, tie_word_embeddings=False,
        use_sliding_window=False)),
    # Dense-MLP blocks among the MoE blocks (a second block kind in gptqd): decoder_sparse_step 2
    # makes blocks 0 and 2 Qwen2MoeMLP(intermediate_size), block 1 MoE; mlp_only_layers [1]
    # makes Qwen3-MoE's block 1 dense between two MoE blocks.
    "qwen2_moe_mixed": (Qwen2MoeConfig, Qwen2MoeForCausalLM, 35, dict(
        COMMON, num_hidden_layers=3, decoder_sparse_step=2, hidden_size=32,
        num_attention_heads=4, num_key_value_heads=2, intermediate_size=40,
        moe_intermediate_size=16, shared_expert_intermediate_size=24, num_experts=3,
        num_experts_per_tok=2, norm_topk_prob=False, tie_word_embeddings=True,
        use_sliding_window=False)),
    "qwen3_moe_mixed": (Qwen3MoeConfig, Qwen3MoeForCausalLM, 45, dict(
        COMMON, num_hidden_layers=3, mlp_only_layers=[1], hidden_size=32, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, intermediate_size=36, moe_intermediate_size=12,
        num_experts=5, num_experts_per_tok=2, norm_topk_prob=True, attention_bias=False,
        tie_word_embeddings=False, use_sliding_window=False)),
}


def init_weights(model, seed):
    """Non-trivial values for every parameter, drawn in named_parameters() order."""
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=g) * std

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_tokens" in name:
                p.copy_(normal(p.shape, 0.25))
            elif "norm" in name and name.endswith(".weight"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.4 + 0.8)
            elif name.endswith(".bias"):
                p.copy_(normal(p.shape, 0.1))
            elif p.dim() == 3:  # fused experts [E, out, in]
                p.copy_(normal(p.shape, 1.0 / math.sqrt(p.shape[2])))
            elif name.endswith(".weight") and p.dim() == 2:
                gain = 1.5 if ("q_proj" in name or "k_proj" in name) else 1.0
                if name.endswith("mlp.gate.weight") or name.endswith("block_sparse_moe.gate.weight"):
                    gain = 3.0
                p.copy_(normal(p.shape, gain / math.sqrt(p.shape[1])))
            else:
                raise RuntimeError(f"unexpected parameter {name}")


class MarginWatch:
    """Hooks every router; records the smallest gap between the k-th and (k+1)-th probability."""

    def __init__(self, model, k):
        self.k, self.smallest, self.handles = k, math.inf, []
        for layer in model.model.layers:
            gate = getattr(layer.mlp, "gate", None)  # none in a dense-MLP block
            if gate is not None:
                self.handles.append(gate.register_forward_hook(self.hook))

    def hook(self, module, args, out):
        logits = out[0] if isinstance(out, tuple) else out
        p = torch.softmax(logits.float(), dim=-1)
        if p.shape[-1] == self.k:
            return
        top = torch.topk(p, self.k + 1, dim=-1).values
        self.smallest = min(self.smallest, float((top[..., -2] - top[..., -1]).min()))

    def remove(self):
        for h in self.handles:
            h.remove()


def make_model(config_cls, model_cls, seed, kwargs):
    config = config_cls(**kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_cls(config).float().eval()
    init_weights(model, seed)
    return model


@torch.no_grad()
def forward_fixture(model, ids):
    blocks = model.model.layers
    outs = [None] * len(blocks)

    def hook(i):
        return lambda m, a, o: outs.__setitem__(i, (o[0] if isinstance(o, tuple) else o).clone())

    hooks = [blk.register_forward_hook(hook(i)) for i, blk in enumerate(blocks)]
    res = model(input_ids=ids, output_hidden_states=True, use_cache=False, return_dict=True)
    for h in hooks:
        h.remove()
    hs = res.hidden_states
    assert len(hs) == len(blocks) + 1
    for i in range(len(blocks) - 1):
        assert torch.equal(hs[i + 1], outs[i]), f"hidden_states[{i + 1}] is not block {i}'s output"
    assert torch.equal(hs[0], model.model.embed_tokens(ids))
    assert torch.equal(hs[-1], model.model.norm(outs[-1]))
    t = {"input_ids": ids.to(torch.int32).contiguous(), "embeddings": hs[0].contiguous()}
    for i, o in enumerate(outs):
        t[f"block.{i}"] = o.contiguous()
    t["logits"] = res.logits.contiguous()
    return t


def save(tensors, path):
    made_with = ", ".join(f"{k} {v}" for k, v in VERSIONS.items())
    save_file(tensors, str(path), metadata={"made_with": made_with})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    found = {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0]}
    if found != VERSIONS:
        sys.exit(f"error: found {found}; these fixtures are made with {VERSIONS}")
    torch.set_num_threads(1)
    tmp = a.out.with_name(a.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, (config_cls, model_cls, seed, kwargs) in CASES.items():
        model = make_model(config_cls, model_cls, seed, kwargs)
        watch = MarginWatch(model, kwargs["num_experts_per_tok"])
        d = tmp / name
        model.save_pretrained(d, safe_serialization=True)
        (d / "generation_config.json").unlink(missing_ok=True)
        g = torch.Generator().manual_seed(100 + seed)
        ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
        save(forward_fixture(model, ids), d / "forward.safetensors")
        toks = torch.randint(0, VOCAB, (1, PPL_TOKENS), generator=g)
        p = perplexity_fixture(model, toks, PPL_SEQLEN)
        save(p, d / "perplexity.safetensors")
        watch.remove()
        if watch.smallest < MIN_MARGIN:
            sys.exit(f"error: {name}: a routing margin of {watch.smallest:.2e} < {MIN_MARGIN}: "
                     f"change the seed")
        sizes = ", ".join(f"{f.name} {f.stat().st_size:,}" for f in sorted(d.iterdir()))
        print(f"{name}: ppl {p['ppl'].item():.4f}; smallest routing margin "
              f"{watch.smallest:.2e}; {sizes}")
    total = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    if total > MAX_BYTES:
        shutil.rmtree(tmp)
        sys.exit(f"error: the fixtures would take {total:,} bytes, more than {MAX_BYTES:,}")
    shutil.rmtree(a.out, ignore_errors=True)
    tmp.rename(a.out)
    print(f"wrote {a.out} ({total:,} bytes)")


if __name__ == "__main__":
    main()
