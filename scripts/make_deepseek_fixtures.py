#!/usr/bin/env python3
"""Golden fixtures for the C++ DeepSeek-V3 / Kimi-K2 forward (MLA attention, YaRN, sigmoid router
with group-limited selection and correction bias, shared experts), made with transformers' own
DeepseekV3ForCausalLM (issue 19 item 7).

Regenerate, from the repository root (deterministic: fixed seeds, CPU, fp32, eval mode, eager
attention, one thread):
    python3 -m venv /tmp/venv-tf5
    /tmp/venv-tf5/bin/pip install torch==2.15.0 transformers==5.25.0 safetensors==0.8.0
    /tmp/venv-tf5/bin/python scripts/make_deepseek_fixtures.py
The versions are pinned (VERSIONS). transformers 5 fuses the experts into 3-D parameters on load;
save_pretrained writes them back one tensor per expert and projection
(mlp.experts.E.{gate,up,down}_proj), as the released checkpoints store them. The config.json
files are 5.x spellings (rope_parameters, dtype); tests/unit/test_deepseek_config.cpp reads the
released 4.x spellings (rope_scaling with "type": "yarn", torch_dtype) of the same keys.

Writes tests/fixtures/deepseek/ (the script refuses to write more than 1.2 MB in all):
  <case>/config.json, <case>/model.safetensors  a tiny random DeepseekV3ForCausalLM. Every
      parameter is drawn from a seeded torch generator (init_weights): norm weights uniform in
      [0.8, 1.2), biases N(0, 0.1), linear and expert weights N(0, gain/sqrt(fan_in)) (gain 1.5
      for the q/k paths, 3 for the router so that the choice is clear), the router's
      e_score_correction_bias N(0, 0.3) (transformers initialises it to zeros: a fixture with zeros
      would not notice a forward that drops it), embeddings N(0, 0.25). Vocabulary 160, 2 blocks,
      first_k_dense_replace 0 unless a case says otherwise, rms_norm_eps 1e-5 (the q_a/kv_a
      norms keep transformers' 1e-6).
      Cases:
        lora_yarn   hidden 32, 4 heads, q_lora_rank 24, kv_lora_rank 16, qk_nope 8, qk_rope 8,
                    v_head_dim 12 (< qk 16), 9 experts of width 12 in 3 groups, topk_group 2,
                    top-3, 1 shared expert, norm_topk_prob, routed_scaling_factor 2.5, YaRN
                    (factor 4, original 32, beta 32/1, mscale 0.8, mscale_all_dim 0.7: both the
                    cos/sin factor and the softmax scale differ from 1), interleaved RoPE, untied
        plain_q     hidden 32, 4 heads, q_lora_rank null (q_proj), kv_lora_rank 12, qk_nope 6,
                    qk_rope 4, v_head_dim 12 (> qk 10), 5 experts of width 10, 1 group, top-1,
                    2 shared experts, norm_topk_prob false, routed_scaling_factor 1.7, default
                    RoPE, rope_interleave false (5.x), attention_bias (kv_a and o biases), tied
        groups      hidden 32, 2 heads, q_lora_rank 16, kv_lora_rank 16, qk_nope 8, qk_rope 8,
                    v_head_dim 8, 8 experts of width 8 in 4 groups, topk_group 2, top-2, 1 shared
                    expert, norm_topk_prob, routed_scaling_factor 2.0, YaRN (factor 8, original
                    16, beta 8/2, mscale = mscale_all_dim = 1, truncate false), interleaved, untied
        dense_first 3 blocks, first_k_dense_replace 1 (Kimi-K2's): block 0 DeepseekV3MLP of
                    width intermediate_size 40, blocks 1-2 MoE (6 experts of width 10 in 2
                    groups, topk_group 1, top-2, 1 shared expert), q_lora_rank 16, kv 12,
                    default RoPE, interleaved, untied
  <case>/forward.safetensors  input_ids I32 [2, 17], embeddings, block.<i> F32 [2, 17, hidden],
      logits F32 [2, 17, vocab], as make_moe_fixtures.py writes them.
  <case>/perplexity.safetensors  the GPTQ paper's perplexity protocol (scripts/ppl_protocol.py):
      101 tokens, windows of 32.
  fp8/, dequantized/  plain_q stored in FP8 with block scales, and its exact dequantization
      (scripts/make_deepseek_fp8_fixtures.py says how).

Routing margins: every router call is hooked and recomputed; the smallest gap between the
topk_group-th and next group score and between the k-th and next selectable expert score (biased,
masked) is asserted >= MIN_MARGIN, so a correct reimplementation cannot pick other experts by a
different summation order. The gaps are printed.
"""
import argparse
import math
import shutil
import sys
from pathlib import Path

import torch

from ppl_protocol import perplexity_fixture  # scripts/ppl_protocol.py
from make_deepseek_fp8_fixtures import make as make_fp8  # FP8 copies of plain_q
import transformers
from safetensors.torch import save_file
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/fixtures/deepseek"
VERSIONS = {"transformers": "5.25.0", "torch": "2.15.0"}
MAX_BYTES = 1_200_000
MIN_MARGIN = 2e-5

VOCAB, BATCH, SEQ = 160, 2, 17
PPL_SEQLEN, PPL_TOKENS = 32, 101
COMMON = dict(vocab_size=VOCAB, rms_norm_eps=1e-5, attention_dropout=0.0,
              max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=None,
              dtype="float32", num_hidden_layers=2, hidden_size=32, intermediate_size=40,
              first_k_dense_replace=0, num_mtp_layers=0, hidden_act="silu")

CASES = {
    "lora_yarn": (61, dict(
        COMMON, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=24, kv_lora_rank=16,
        qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=9,
        moe_intermediate_size=12, n_group=3, topk_group=2, num_experts_per_tok=3,
        n_shared_experts=1, norm_topk_prob=True, routed_scaling_factor=2.5,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                         "original_max_position_embeddings": 32, "beta_fast": 32, "beta_slow": 1,
                         "mscale": 0.8, "mscale_all_dim": 0.7},
        rope_interleave=True, attention_bias=False, tie_word_embeddings=False)),
    "plain_q": (62, dict(
        COMMON, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=12,
        qk_nope_head_dim=6, qk_rope_head_dim=4, v_head_dim=12, n_routed_experts=5,
        moe_intermediate_size=10, n_group=1, topk_group=1, num_experts_per_tok=1,
        n_shared_experts=2, norm_topk_prob=False, routed_scaling_factor=1.7,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        rope_interleave=False, attention_bias=True, tie_word_embeddings=True)),
    "groups": (63, dict(
        COMMON, num_attention_heads=2, num_key_value_heads=2, q_lora_rank=16, kv_lora_rank=16,
        qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, n_routed_experts=8,
        moe_intermediate_size=8, n_group=4, topk_group=2, num_experts_per_tok=2,
        n_shared_experts=1, norm_topk_prob=True, routed_scaling_factor=2.0,
        rope_parameters={"rope_type": "yarn", "rope_theta": 5000.0, "factor": 8.0,
                         "original_max_position_embeddings": 16, "beta_fast": 8, "beta_slow": 2,
                         "mscale": 1.0, "mscale_all_dim": 1.0, "truncate": False},
        rope_interleave=True, attention_bias=False, tie_word_embeddings=False)),
    # Kimi-K2's first_k_dense_replace 1: block 0 is DeepseekV3MLP(intermediate_size), blocks 1
    # and 2 MoE (a second block kind in gptqd).
    "dense_first": (64, dict(
        COMMON, num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=2,
        num_key_value_heads=2, q_lora_rank=16, kv_lora_rank=12, qk_nope_head_dim=8,
        qk_rope_head_dim=4, v_head_dim=8, n_routed_experts=6, moe_intermediate_size=10,
        n_group=2, topk_group=1, num_experts_per_tok=2, n_shared_experts=1,
        norm_topk_prob=True, routed_scaling_factor=2.5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        rope_interleave=True, attention_bias=False, tie_word_embeddings=False)),
}


def init_weights(model, seed):
    """Non-trivial values for every parameter and the correction bias, drawn in order."""
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
                gain = 1.0
                if any(k in name for k in ("q_proj", "q_a_proj", "q_b_proj", "kv_a_proj",
                                           "kv_b_proj")):
                    gain = 1.5
                if name.endswith("mlp.gate.weight"):
                    gain = 3.0
                p.copy_(normal(p.shape, gain / math.sqrt(p.shape[1])))
            else:
                raise RuntimeError(f"unexpected parameter {name}")
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(normal(b.shape, 0.3))


class MarginWatch:
    """Hooks every router; records the smallest selection gaps (groups and experts)."""

    def __init__(self, model):
        self.group, self.expert, self.handles = math.inf, math.inf, []
        for layer in model.model.layers:
            gate = getattr(layer.mlp, "gate", None)  # none in a dense-MLP block
            if gate is not None:
                self.handles.append(gate.register_forward_hook(self.hook))

    def hook(self, m, args, out):
        x = args[0].reshape(-1, m.hidden_dim).float()
        s = torch.sigmoid(x @ m.weight.float().T) + m.e_score_correction_bias
        e, ng = m.num_experts, m.num_group
        gs = s.view(-1, ng, e // ng).topk(2, dim=-1)[0].sum(-1)
        if m.topk_group < ng:
            top = torch.topk(gs, m.topk_group + 1, dim=-1).values
            self.group = min(self.group, float((top[:, -2] - top[:, -1]).min()))
        idx = torch.topk(gs, m.topk_group, dim=-1).indices
        mask = torch.zeros_like(gs).scatter_(1, idx, 1).bool()
        mask = mask.unsqueeze(-1).expand(-1, ng, e // ng).reshape(-1, e)
        s = s.masked_fill(~mask, float("-inf"))
        if m.top_k < m.topk_group * (e // ng):
            top = torch.topk(s, m.top_k + 1, dim=-1).values
            self.expert = min(self.expert, float((top[:, -2] - top[:, -1]).min()))

    def remove(self):
        for h in self.handles:
            h.remove()


def make_model(seed, kwargs):
    config = DeepseekV3Config(**kwargs)
    config._attn_implementation = "eager"
    # The plain loop over experts (DeepseekV3Experts.forward), not torch's grouped_mm.
    config._experts_implementation = "eager"
    torch.manual_seed(seed)
    model = DeepseekV3ForCausalLM(config).float().eval()
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
    for name, (seed, kwargs) in CASES.items():
        model = make_model(seed, kwargs)
        watch = MarginWatch(model)
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
        smallest = min(watch.group, watch.expert)
        if smallest < MIN_MARGIN:
            sys.exit(f"error: {name}: a routing margin of {smallest:.2e} < {MIN_MARGIN}: "
                     f"change the seed")
        sizes = ", ".join(f"{f.name} {f.stat().st_size:,}" for f in sorted(d.iterdir()))
        print(f"{name}: ppl {p['ppl'].item():.4f}; smallest margins: groups {watch.group:.2e}, "
              f"experts {watch.expert:.2e}; {sizes}")
    make_fp8(tmp / "plain_q", tmp)  # fp8/ and dequantized/
    total = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    if total > MAX_BYTES:
        shutil.rmtree(tmp)
        sys.exit(f"error: the fixtures would take {total:,} bytes, more than {MAX_BYTES:,}")
    shutil.rmtree(a.out, ignore_errors=True)
    tmp.rename(a.out)
    print(f"wrote {a.out} ({total:,} bytes)")


if __name__ == "__main__":
    main()
