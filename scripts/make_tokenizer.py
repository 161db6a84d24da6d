#!/usr/bin/env python3
"""Train the tiny-bloom tokenizer: a byte-level BPE built exactly like BLOOM's tokenizer.json.

Also writes the deterministic train/eval split of data/austen.txt that the tokenizer is trained
on: data/austen-train.txt is the first 90% of the bytes, cut just after the first newline at or
after 90% of the file; data/austen-eval.txt is the rest. Calibration samples come from the train
part only; the eval part is held out for perplexity.

BLOOM's layout (DESIGN.md section 5): no normalizer; pre-tokenizer
Sequence[Split(Regex(" ?[^(\\s|[.,!?…。，、।۔،])]+"), Isolated, invert false),
ByteLevel(add_prefix_space false, trim_offsets true, use_regex false)]; decoder ByteLevel; model
BPE without byte fallback; specials <unk> <s> </s> <pad> at ids 0-3. Here the vocabulary is 4096.

Regenerate (deterministic: the same inputs give the same bytes):
    source scripts/python-env.sh
    "$GPTQD_PYTHON" scripts/make_tokenizer.py
Outputs: data/austen-train.txt, data/austen-eval.txt, models/tiny-bloom/tokenizer.json.
"""
import argparse
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parent.parent
BLOOM_SPLIT_REGEX = " ?[^(\\s|[.,!?…。，、।۔،])]+"
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def split_austen(src: Path, train: Path, eval_: Path) -> None:
    data = src.read_bytes()
    cut = data.index(b"\n", (len(data) * 9) // 10) + 1
    train.write_bytes(data[:cut])
    eval_.write_bytes(data[cut:])
    print(f"{train}: {cut} bytes; {eval_}: {len(data) - cut} bytes")


def bloom_like_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE(dropout=None, unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(BLOOM_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--out", type=Path, default=ROOT / "models/tiny-bloom/tokenizer.json")
    args = ap.parse_args()

    train = ROOT / "data/austen-train.txt"
    split_austen(ROOT / "data/austen.txt", train, ROOT / "data/austen-eval.txt")

    tok = bloom_like_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=args.vocab_size,
        min_frequency=2,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes are reachable
        show_progress=False,
    )
    tok.train([str(train)], trainer)
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, f"{s} is not at id {i}"
    assert tok.get_vocab_size() == args.vocab_size, tok.get_vocab_size()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(args.out), pretty=True)
    print(f"{args.out}: vocab {tok.get_vocab_size()}")


if __name__ == "__main__":
    main()
