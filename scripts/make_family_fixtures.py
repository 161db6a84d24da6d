#!/usr/bin/env python3
"""Golden fixtures for the C++ Llama, Mistral, Qwen2, Qwen3 and OPT forwards, made with HF transformers.

Regenerate, from the repository root (deterministic: fixed seeds, CPU, fp32, eval mode, eager
attention, one thread):
    source scripts/python-env-hf.sh
    "$GPTQD_HF_PYTHON" scripts/make_family_fixtures.py
python-env-hf.sh pins torch 2.5.1 (PyPI) and transformers 4.57.6, the versions these fixtures
were made with (scripts/python-env.sh's transformers 4.36.2 predates Qwen3, llama3 rope_scaling
and an explicit Llama head_dim). Same conventions as scripts/make_fixtures.py (BLOOM).

Writes tests/fixtures/families/ (the script refuses to write more than 4 MB in all):
  <case>/config.json, <case>/model.safetensors  a tiny random *ForCausalLM saved with
      save_pretrained(safe_serialization=True) (a tied LM head is not stored: no lm_head.weight).
      Every parameter is drawn from a seeded torch generator (init_weights): norm weights uniform
      in [0.8, 1.2), norm and linear biases N(0, 0.1), linear weights N(0, gain/sqrt(fan_in))
      (0.03-0.15; gain 1.5 for q/k so that attention is peaked and the positions matter),
      embeddings N(0, 0.25) -- so a forward that skips a bias or a norm's weight disagrees.
      Cases (vocab 300 everywhere; see CASES for every key; FFN widths are small, 40 or 96,
      only to keep the whole under 4 MB: the 9 x 64 query width of llama_gqa alone is 1.5 MB):
        llama_gqa    Llama, hidden 96, 9 heads / 3 KV, head_dim 64 given (9*64 != 96),
                     FFN 40, 2 layers, untied, rope_theta 1e4, default rope
        llama3_rope  Llama, hidden 64, 4 heads / 2 KV, head_dim 16 derived, FFN 40, 3 layers,
                     tied, rope_theta 5e5, rope_scaling llama3 (factor 8, low 1, high 4,
                     original_max_position_embeddings 64: of the 8 frequencies 1 is kept, 1 is
                     smoothed, 6 are divided by 8), attention_bias (q, k, v and o_proj) and
                     mlp_bias (gate, up, down) true
        llama_linear Llama, hidden 48, 6 heads / 6 KV (no GQA), head_dim 8 derived, FFN 40,
                     2 layers, tied, rope_scaling linear factor 4
        mistral      Mistral, hidden 48, 8 heads / 2 KV, head_dim 6 (config says null), FFN 40,
                     2 layers, tied, sliding_window 4096, rope_theta 1e6
        qwen2        Qwen2, hidden 48, 6 heads / 2 KV, head_dim 8, FFN 40, 2 layers, tied,
                     q/k/v biases (always there in Qwen2; o_proj has none), rope_theta 1e6
        qwen3        Qwen3 (dense), hidden 32, 4 heads / 2 KV, head_dim 80 given, FFN 40,
                     2 layers, untied, q_norm/k_norm (RMSNorm over each head's 80 values,
                     before rope), attention_bias false, rope_theta 1e6
        opt_pre      OPT, hidden 64, 4 heads, FFN 96, 2 layers, max_position_embeddings 64,
                     word_embed_proj_dim 64, tied, enable_bias, do_layer_norm_before true
        opt_post     the same with do_layer_norm_before false (OPT-350m's post-LN order; no
                     decoder-level final_layer_norm)
      All norm eps 1e-5; bos 1, eos 2. Sizes: 3.9 MB in all, llama_gqa/model.safetensors 1.5 MB,
      the other models 0.15-0.36 MB, each forward.safetensors 55-81 kB.
  <case>/forward.safetensors  the model on fixed token ids (2 sequences x 17 tokens, no
      attention mask, i.e. all ones; positions 0..16, OPT reads its position table at 2..18):
        input_ids    I32 [2, 17]
        embeddings   F32 [2, 17, hidden]  the input of block 0 (output_hidden_states[0]):
                                          embed_tokens(ids); for OPT + embed_positions(pos + 2)
        block.<i>    F32 [2, 17, hidden]  the output of decoder layer i (a forward hook on the
                     layer module); asserted equal to output_hidden_states[i + 1] for every
                     layer but the last, where HF applies the final norm (no final norm in
                     post-LN OPT: there it is asserted equal too)
        logits       F32 [2, 17, vocab]
  <case>/perplexity.safetensors  (every case) the GPTQ paper's perplexity protocol exactly as
      make_fixtures.py does it for BLOOM: tokens I32 [101] (3 windows of 32 and a remainder of
      5 that the protocol drops), seqlen I64 [1] = 32, window_nll F64 [3] (mean CrossEntropy of
      each window's 31 next-token predictions, fp32), ppl F64 [1] = exp(sum(nll*seqlen) /
      (nwindows*seqlen)). Each window is its own forward: positions restart at 0.
  rope.safetensors  transformers' ROPE_INIT_FUNCTIONS: F32 "inv_freq.<label>" [head_dim/2] and
      F32 "attention_scaling.<label>" [1] for the default, linear and llama3 rules at the
      settings in ROPE_SETTINGS; the safetensors metadata "settings" is a JSON object label ->
      {rope_type, head_dim, rope_theta, and the rope_scaling keys}.
forward and perplexity files carry metadata "made_with": "transformers 4.57.6, torch 2.5.1".
Byte-identical on every run (checked by running twice and comparing the trees).

What transformers 4.57.6 does that a reimplementation must match (fp32 throughout):
  RMSNorm  weight * (x * rsqrt(mean(x^2) + eps)); Qwen3's q_norm/k_norm is the same over each
      head's head_dim values of q_proj(x) / k_proj(x) (after any bias), before rope; v untouched.
  RoPE  inv_freq = 1 / theta^(2i/d) in fp32; linear divides inv_freq by factor (not positions);
      llama3 keeps wavelengths < orig/high_freq_factor, divides those > orig/low_freq_factor by
      factor, smooths in between; angle = inv_freq * pos; cos/sin multiplied by
      attention_scaling (1.0 for these three rules); rotate_half pairs element j with j + d/2
      (halves, not interleaved pairs).
  Attention  softmax(q k^T * head_dim^-0.5 + causal mask) v; query head h reads KV head
      h // (n_heads / n_kv_heads). OPT scales q after its bias: q = q_proj(x) * head_dim^-0.5.
  Llama's attention_bias puts biases on q, k, v *and* o_proj; Qwen2 has q/k/v biases only.
  MLP  down(silu(gate(x)) * up(x)); OPT fc2(relu(fc1(x))).
  OPT  positions = cumsum(mask) - 1, table row = position + 2; pre-LN: h += attn(ln1(h)),
      h += mlp(ln2(h)), decoder.final_layer_norm at the end; post-LN: h = ln1(h + attn(h)),
      h = ln2(h + mlp(h)), no final norm. LayerNorm eps 1e-5 (not in config.json).
  config.json: "dtype" (not "torch_dtype"); Llama writes head_dim even when derived; Mistral
      writes "head_dim": null; Qwen2 has no attention_bias key; OPT has no norm eps key.
"""
import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import torch

from ppl_protocol import perplexity_fixture  # scripts/ppl_protocol.py
import transformers
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          OPTConfig, OPTForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/fixtures/families"
VERSIONS = {"transformers": "4.57.6", "torch": "2.5.1"}
MAX_BYTES = 4_000_000

VOCAB, BATCH, SEQ = 300, 2, 17
PPL_SEQLEN, PPL_TOKENS = 32, 101
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}
# Keys common to the Llama-like configs: no dropout, no pretraining_tp, eps as Llama 2/3.
LL = dict(vocab_size=VOCAB, rms_norm_eps=1e-5, attention_dropout=0.0, max_position_embeddings=128,
          bos_token_id=1, eos_token_id=2, torch_dtype="float32")
OPT = dict(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4, ffn_dim=96, num_hidden_layers=2,
           max_position_embeddings=64, word_embed_proj_dim=64, enable_bias=True, dropout=0.0,
           attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0, activation_function="relu",
           tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0,
           torch_dtype="float32")

CASES = {
    "llama_gqa": (LlamaConfig, LlamaForCausalLM, 21, dict(
        LL, hidden_size=96, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
        intermediate_size=40, num_hidden_layers=2, tie_word_embeddings=False, rope_theta=10000.0)),
    "llama3_rope": (LlamaConfig, LlamaForCausalLM, 22, dict(
        LL, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=40,
        num_hidden_layers=3, tie_word_embeddings=True, rope_theta=500000.0, rope_scaling=LLAMA3,
        attention_bias=True, mlp_bias=True)),
    "llama_linear": (LlamaConfig, LlamaForCausalLM, 23, dict(
        LL, hidden_size=48, num_attention_heads=6, num_key_value_heads=6, intermediate_size=40,
        num_hidden_layers=2, tie_word_embeddings=True, rope_theta=10000.0,
        rope_scaling={"rope_type": "linear", "factor": 4.0})),
    "mistral": (MistralConfig, MistralForCausalLM, 24, dict(
        LL, hidden_size=48, num_attention_heads=8, num_key_value_heads=2, intermediate_size=40,
        num_hidden_layers=2, tie_word_embeddings=True, rope_theta=1e6, sliding_window=4096)),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, 25, dict(
        LL, hidden_size=48, num_attention_heads=6, num_key_value_heads=2, intermediate_size=40,
        num_hidden_layers=2, tie_word_embeddings=True, rope_theta=1e6, use_sliding_window=False)),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, 26, dict(
        LL, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=80,
        intermediate_size=40, num_hidden_layers=2, tie_word_embeddings=False, rope_theta=1e6,
        attention_bias=False, use_sliding_window=False)),
    "opt_pre": (OPTConfig, OPTForCausalLM, 27, dict(OPT, do_layer_norm_before=True)),
    "opt_post": (OPTConfig, OPTForCausalLM, 28, dict(OPT, do_layer_norm_before=False)),
}

# label -> rope settings for rope.safetensors
ROPE_SETTINGS = {
    "default.hd64.theta1e4": dict(rope_type="default", head_dim=64, rope_theta=10000.0),
    "default.hd128.theta5e5": dict(rope_type="default", head_dim=128, rope_theta=500000.0),
    "default.hd80.theta1e6": dict(rope_type="default", head_dim=80, rope_theta=1e6),
    "default.hd64.theta1e5": dict(rope_type="default", head_dim=64, rope_theta=100000.0),  # SmolLM2
    "default.hd12.theta1e4": dict(rope_type="default", head_dim=12, rope_theta=10000.0),
    "linear.hd12.theta1e4.f4": dict(rope_type="linear", head_dim=12, rope_theta=10000.0, factor=4.0),
    "linear.hd128.theta1e4.f2": dict(rope_type="linear", head_dim=128, rope_theta=10000.0, factor=2.0),
    "llama3.hd16.theta5e5.case": dict(LLAMA3, head_dim=16, rope_theta=500000.0),
    # Llama 3.1 and 3.2 as released
    "llama3.hd128.theta5e5.f8": dict(LLAMA3, head_dim=128, rope_theta=500000.0,
                                     original_max_position_embeddings=8192),
    "llama3.hd64.theta5e5.f32": dict(LLAMA3, head_dim=64, rope_theta=500000.0, factor=32.0,
                                     original_max_position_embeddings=8192),
}


def init_weights(model, seed):
    """Non-trivial values for every parameter, drawn in named_parameters() order."""
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=g) * std

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_tokens" in name or "embed_positions" in name:
                p.copy_(normal(p.shape, 0.25))
            elif "norm" in name and name.endswith(".weight"):  # RMSNorm, LayerNorm, q/k_norm
                p.copy_(torch.rand(p.shape, generator=g) * 0.4 + 0.8)  # uniform [0.8, 1.2)
            elif name.endswith(".bias"):  # linear and LayerNorm biases
                p.copy_(normal(p.shape, 0.1))
            elif name.endswith(".weight") and p.dim() == 2:  # linear [out, in]
                gain = 1.5 if ("q_proj" in name or "k_proj" in name) else 1.0
                p.copy_(normal(p.shape, gain / math.sqrt(p.shape[1])))
            else:
                raise RuntimeError(f"unexpected parameter {name}")


def make_model(config_cls, model_cls, seed, kwargs):
    config = config_cls(**kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)  # transformers' own init, overwritten below
    model = model_cls(config).float().eval()
    init_weights(model, seed)
    return model


def blocks_of(model):
    return model.model.decoder.layers if isinstance(model, OPTForCausalLM) else model.model.layers


@torch.no_grad()
def forward_fixture(model, ids):
    blocks = blocks_of(model)
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
    if isinstance(model, OPTForCausalLM):
        dec = model.model.decoder
        pos = model.model.decoder.embed_positions.weight[2:2 + ids.shape[1]]
        assert torch.equal(hs[0], dec.embed_tokens(ids) + pos), "OPT embeddings != tokens + pos[2:]"
        final = dec.final_layer_norm(outs[-1]) if dec.final_layer_norm is not None else outs[-1]
    else:
        assert torch.equal(hs[0], model.model.embed_tokens(ids))
        final = model.model.norm(outs[-1])
    assert torch.equal(hs[-1], final), "last hidden state is not the final norm of the last block"
    t = {"input_ids": ids.to(torch.int32).contiguous(), "embeddings": hs[0].contiguous()}
    for i, o in enumerate(outs):
        t[f"block.{i}"] = o.contiguous()
    t["logits"] = res.logits.contiguous()
    return t



def rope_tables():
    out = {}
    for label, s in ROPE_SETTINGS.items():
        scaling = {k: v for k, v in s.items() if k not in ("head_dim", "rope_theta")}
        hd = s["head_dim"]
        config = LlamaConfig(hidden_size=hd * 2, num_attention_heads=2, head_dim=hd,
                             rope_theta=s["rope_theta"], max_position_embeddings=131072,
                             rope_scaling=None if s["rope_type"] == "default" else scaling)
        inv_freq, scale = ROPE_INIT_FUNCTIONS[s["rope_type"]](config, "cpu")
        out[f"inv_freq.{label}"] = inv_freq.float().contiguous()
        out[f"attention_scaling.{label}"] = torch.tensor([scale], dtype=torch.float32)
    return out


def check_llama3_bands(config):
    """All three wavelength bands of the llama3 rule occur in the llama3_rope case."""
    r = config.rope_scaling
    hd = config.hidden_size // config.num_attention_heads
    inv = config.rope_theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    wavelen = 2 * math.pi / inv
    ctx = r["original_max_position_embeddings"]
    high = int((wavelen < ctx / r["high_freq_factor"]).sum())
    low = int((wavelen > ctx / r["low_freq_factor"]).sum())
    assert high > 0 and low > 0 and high + low < hd // 2, (high, low, hd)
    return f"llama3 bands: {high} kept, {hd // 2 - high - low} smoothed, {low} divided"


def save(tensors, path):
    # One metadata key only: safetensors writes its metadata map in random order, and the
    # files must come out byte-identical run after run.
    made_with = ", ".join(f"{k} {v}" for k, v in VERSIONS.items())
    save_file(tensors, str(path), metadata={"made_with": made_with})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    found = {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0]}
    if found != VERSIONS:
        print(f"warning: {found}; the fixtures were made with {VERSIONS}", file=sys.stderr)
    torch.set_num_threads(1)  # the same summation order on any machine
    # Written to a scratch folder first, moved into place only when under MAX_BYTES.
    tmp = a.out.with_name(a.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, (config_cls, model_cls, seed, kwargs) in CASES.items():
        model = make_model(config_cls, model_cls, seed, kwargs)
        d = tmp / name
        model.save_pretrained(d, safe_serialization=True)
        (d / "generation_config.json").unlink(missing_ok=True)  # needed by no one
        g = torch.Generator().manual_seed(100 + seed)
        ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
        save(forward_fixture(model, ids), d / "forward.safetensors")
        toks = torch.randint(0, VOCAB, (1, PPL_TOKENS), generator=g)
        p = perplexity_fixture(model, toks, PPL_SEQLEN)
        save(p, d / "perplexity.safetensors")
        extra = check_llama3_bands(model.config) if name == "llama3_rope" else ""
        sizes = ", ".join(f"{f.name} {f.stat().st_size:,}" for f in sorted(d.iterdir()))
        print(f"{name}: ppl {p['ppl'].item():.4f}; {sizes} {extra}")
    settings = {label: s for label, s in ROPE_SETTINGS.items()}
    save_file(rope_tables(), str(tmp / "rope.safetensors"),
              metadata={"settings": json.dumps(settings, sort_keys=True)})
    total = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    if total > MAX_BYTES:
        shutil.rmtree(tmp)
        sys.exit(f"error: the fixtures would take {total:,} bytes, more than {MAX_BYTES:,}; "
                 f"nothing written")
    shutil.rmtree(a.out, ignore_errors=True)
    tmp.rename(a.out)
    print(f"wrote {a.out} ({total:,} bytes)")


if __name__ == "__main__":
    main()
