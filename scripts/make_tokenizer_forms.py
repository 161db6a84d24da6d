#!/usr/bin/env python3
"""Golden fixtures of the tokenizer.json forms of the supported families (tests/unit/
test_tokenizer_forms.cpp), made with HF tokenizers 0.21.1.

Regenerate, from the repository root (deterministic; a few minutes on one core):
    source scripts/python-env-tok.sh
    "$GPTQD_TOK_PYTHON" scripts/make_tokenizer_forms.py
python-env-tok.sh pins tokenizers 0.21.1 (Llama 3's "ignore_merges" needs >= 0.19).

No released vocabulary small enough to commit is reachable here (the model hub is not; the one
PyPI package with SmolLM2's vocabulary is a 93 MB wheel), so each form is a small BPE tokenizer
(vocabulary FORMS[...].vocab) TRAINED with HF's BpeTrainer on data/austen-train.txt, with exactly
the settings the released tokenizer.json of the family uses (normalizer, pre-tokenizer with the
verbatim regex, model options, post-processor, decoder, added tokens). What is checked is the
tokenization algorithm a form implies, which does not depend on the vocabulary's size.

Writes tests/fixtures/tokenizer/forms/<form>/ for each form (gpt2, opt, smollm2, llama3, qwen2,
llama2, mistral):
  tokenizer.json  the tokenizer;
  austen.bin, kjv.bin  every line of data/austen.txt, data/kjv.txt (Python's str.split("\\n")),
      each encoded alone with tok.encode(line, add_special_tokens=True), in groups of GROUP lines.
      Little-endian layout:
        char[4] "GTKG"; uint32 version = 2; uint32 n_lines; uint32 group; uint64 whole-file FNV-1a;
        then per group of `group` lines (the last may be shorter): uint32 n_ids of the group;
        uint64 FNV-1a 64 of the group's ids (each line's ids in turn) as little-endian int32.
      The whole-file hash is the FNV-1a 64 of every line's ids, concatenated in line order. (A
      record per line, as tests/fixtures/tokenizer/*_lines.bin has, would be 1.3 MB per form.)
  cases.json  {"vocab_size": tok.get_vocab_size(with_added_tokens=True), "empty_special": the ids
      of "" with add_special_tokens=True (what the post-processor adds), "added": {content: id},
      "tricky": [{"text", "ids", "ids_special", "decoded"}]}: the tricky strings of
      scripts/make_tokenizer_fixtures.py plus this script's EXTRA_TRICKY and two strings of
      100,000 characters without a space (text {"repeat": unit, "chars": n}: the first n code
      points of unit repeated), encoded with add_special_tokens False ("ids") and True
      ("ids_special"), and decode(ids) (skip_special_tokens=False). A list longer than MAX_LISTED
      ids, or a decoded text longer than MAX_LISTED characters, is written as
      {"n": its length (ids, or UTF-8 bytes), "fnv": FNV-1a 64 (of the ids as int32, or the
      bytes), as a decimal string}.
"""
import json
import struct
import sys
from pathlib import Path

from tokenizers import (Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers,
                        processors, trainers)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from make_tokenizer_fixtures import TRICKY, fnv1a64, ids_bytes, FNV_OFFSET  # noqa: E402

OUT = ROOT / "tests/fixtures/tokenizer/forms"
TRAIN = ROOT / "data/austen-train.txt"
GROUP = 256
MAX_LISTED = 400

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?"
                r"[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?"
               r"[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Strings of 100,000 characters without a space, written to cases.json as {"repeat", "chars"}:
# the first `chars` code points of `repeat` repeated.
LONG_UNITS = ["Knightley1815,said;\u00e9t\u00e9\u65e5\u672c\U0001f600--((x))", "9"]
LONG_CHARS = 100000


def long_text(unit):
    return (unit * (LONG_CHARS // len(unit) + 1))[:LONG_CHARS]


EXTRA_TRICKY = [
    "it'ſ IT'S we'LL they'Ve I'M he'D 'K 'ﬅ x'Ll", "1234567 12 1 2024-12-02 3.14159e10",
    "a\r\n\r\n  b", "!!!\n\nx", "  \n x", "x\r\r\n\n y", " \t\n\t z", "end.\r\n",
    "e\u0301 \u0041\u030a \u212b \u1100\u1161\u11a8 a\u0323\u0302 a\u0302\u0323 \u0344 \u1e0b\u0323",
    "\u00c5ngstr\u00f6m \u0958 \uf900 \u2126", "\u0301 leading combining", "q\u0307\u0323",
    "<s>", "<s> hello", " <s>hello</s> ", "hello<s>", "</s>x", "<|begin_of_text|>hi", "<|im_start|>x<|im_end|>",
    "\u2581already \u2581 meta\u2581space", "  leading spaces", "tab\tand\u00a0nbsp",
    "\u0660\u0661\u0662 \u2460\u2461 \u00bd\u00bc \u0966\u0967", "x\u00b2+y\u00b3",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 \U0001f1ef\U0001f1f5 \u4e2d\u6587",
]

BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]


def byte_level_bpe(form):
    """Trainer and tokenizer skeleton of a byte-level form."""
    tok = Tokenizer(models.BPE())
    return tok, trainers.BpeTrainer(vocab_size=form["vocab"], special_tokens=form["specials"],
                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                    show_progress=False)


def build(name):
    f = FORMS[name]
    if name in ("llama2", "mistral"):
        tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
        # Trained as SentencePiece splits words (a "▁" before each), then given the file's form.
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581",
                                                     prepend_scheme="always", split=True)
        trainer = trainers.BpeTrainer(vocab_size=f["vocab"],
                                      special_tokens=["<unk>", "<s>", "</s>"] + BYTE_TOKENS,
                                      limit_alphabet=120, show_progress=False)
    else:
        tok, trainer = byte_level_bpe(f)
        tok.pre_tokenizer = f["pre"]()
    tok.train([str(TRAIN)], trainer)
    if f.get("added"):
        tok.add_special_tokens(f["added"])
    if f.get("normalizer"):
        tok.normalizer = f["normalizer"]()
    if name in ("llama2", "mistral"):
        tok.pre_tokenizer = f["pre"]() if f.get("pre") else None
    tok.decoder = f["decoder"]()
    tok.post_processor = f["post"](tok) if f.get("post") else None
    j = json.loads(tok.to_str())
    if name in ("llama2", "mistral"):
        j["pre_tokenizer"] = None if name == "llama2" else j["pre_tokenizer"]
    for k, v in f.get("model", {}).items():
        j["model"][k] = v
    return j


def template(bos):
    def make(tok):
        bos_id = tok.token_to_id(bos)
        return processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                             special_tokens=[(bos, bos_id)])
    return make


def bl(prefix=False, trim=True, regex=True):
    return dict(add_prefix_space=prefix, trim_offsets=trim, use_regex=regex)


FORMS = {
    "gpt2": dict(vocab=2500, specials=["<|endoftext|>"],
                 pre=lambda: pre_tokenizers.ByteLevel(**bl(False, True, True)),
                 post=lambda tok: processors.ByteLevel(trim_offsets=False),
                 decoder=lambda: decoders.ByteLevel()),
    "opt": dict(vocab=2500, specials=["<s>", "<pad>", "</s>", "<unk>"],
                pre=lambda: pre_tokenizers.ByteLevel(**bl(False, True, True)),
                post=template("</s>"), decoder=lambda: decoders.ByteLevel()),
    "smollm2": dict(vocab=2500, specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                    pre=lambda: pre_tokenizers.Sequence([
                        pre_tokenizers.Digits(individual_digits=True),
                        pre_tokenizers.ByteLevel(**bl(False, True, True))]),
                    post=lambda tok: processors.ByteLevel(trim_offsets=False),
                    decoder=lambda: decoders.ByteLevel()),
    "llama3": dict(vocab=2500, specials=[], added=["<|begin_of_text|>", "<|end_of_text|>"],
                   pre=lambda: pre_tokenizers.Sequence([
                       pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated",
                                            invert=False),
                       pre_tokenizers.ByteLevel(**bl(False, True, False))]),
                   post=lambda tok: processors.Sequence([
                       processors.ByteLevel(trim_offsets=False),
                       template("<|begin_of_text|>")(tok)]),
                   decoder=lambda: decoders.ByteLevel(), model={"ignore_merges": True}),
    "qwen2": dict(vocab=2500, specials=[],
                  added=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                  normalizer=lambda: normalizers.NFC(),
                  pre=lambda: pre_tokenizers.Sequence([
                      pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
                      pre_tokenizers.ByteLevel(**bl(False, False, False))]),
                  post=lambda tok: processors.ByteLevel(**bl(False, False, False)),
                  decoder=lambda: decoders.ByteLevel(**bl(False, False, False)),
                  model={"ignore_merges": False}),
    "llama2": dict(vocab=2000,
                   normalizer=lambda: normalizers.Sequence([
                       normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")]),
                   post=template("<s>"),
                   decoder=lambda: decoders.Sequence([
                       decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                       decoders.Strip(" ", 1, 0)])),
    "mistral": dict(vocab=2000,
                    pre=lambda: pre_tokenizers.Metaspace(replacement="\u2581",
                                                         prepend_scheme="first", split=False),
                    post=template("<s>"),
                    decoder=lambda: decoders.Sequence([
                        decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                        decoders.Strip(" ", 1, 0)])),
}


def listed(ids):
    if len(ids) <= MAX_LISTED:
        return ids
    return {"n": len(ids), "fnv": str(fnv1a64(ids_bytes(ids)))}


def lines_fixture(tok, text_path, out_path):
    lines = text_path.read_text(encoding="utf-8").split("\n")
    encs = tok.encode_batch(lines, add_special_tokens=True)
    whole = FNV_OFFSET
    records = []
    for g in range(0, len(lines), GROUP):
        n, h = 0, FNV_OFFSET
        for enc in encs[g:g + GROUP]:
            b = ids_bytes(enc.ids)
            whole = fnv1a64(b, whole)
            h = fnv1a64(b, h)
            n += len(enc.ids)
        records.append(struct.pack("<IQ", n, h))
    out_path.write_bytes(b"GTKG" + struct.pack("<IIIQ", 2, len(lines), GROUP, whole) +
                         b"".join(records))


def main():
    names = sys.argv[1:] or list(FORMS)
    for name in names:
        j = build(name)
        text = json.dumps(j, ensure_ascii=False, indent=None, separators=(",", ":"))
        tok = Tokenizer.from_str(text)
        d = OUT / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "tokenizer.json").write_text(text, encoding="utf-8")
        lines_fixture(tok, ROOT / "data/austen.txt", d / "austen.bin")
        lines_fixture(tok, ROOT / "data/kjv.txt", d / "kjv.bin")
        tricky = []
        longs = {long_text(u): u for u in LONG_UNITS}
        for s in TRICKY + EXTRA_TRICKY + list(longs):
            ids = tok.encode(s, add_special_tokens=False).ids
            special = tok.encode(s, add_special_tokens=True).ids
            decoded = tok.decode(ids, skip_special_tokens=False)
            text = {"repeat": longs[s], "chars": LONG_CHARS} if s in longs else s
            tricky.append({"text": text, "ids": listed(ids), "ids_special": listed(special),
                           "decoded": decoded if len(decoded) <= MAX_LISTED else
                           {"n": len(decoded.encode()), "fnv": str(fnv1a64(decoded.encode()))}})
        empty_special = tok.encode("", add_special_tokens=True)
        added = {t.content: i for i, t in tok.get_added_tokens_decoder().items()}
        cases = {"vocab_size": tok.get_vocab_size(with_added_tokens=True),
                 "empty_special": empty_special.ids, "added": added, "tricky": tricky}
        (d / "cases.json").write_text(json.dumps(cases, ensure_ascii=True,
                                                 separators=(",", ":")), encoding="utf-8")
        size = sum(p.stat().st_size for p in d.iterdir())
        print(f"{d}: {size} bytes, vocab {cases['vocab_size']}, empty+specials {empty_special.ids}")


if __name__ == "__main__":
    main()
