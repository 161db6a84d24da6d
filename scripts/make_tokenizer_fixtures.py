#!/usr/bin/env python3
"""Golden fixtures for the C++ tokenizer (tests/unit/test_tokenizer.cpp), made with HF tokenizers.

Regenerate, from the repository root (after scripts/make_tokenizer.py, whose tokenizer.json they
describe; both scripts are deterministic):
    source scripts/python-env.sh
    "$GPTQD_PYTHON" scripts/make_tokenizer.py
    "$GPTQD_PYTHON" scripts/make_tokenizer_fixtures.py
python-env.sh pins tokenizers 0.15.2, the version these fixtures were made with.

    "$GPTQD_PYTHON" scripts/make_tokenizer_fixtures.py --unicode-tables
also regenerates io/tokenizer/tokenizer_unicode_tables.cpp (the Unicode 14 letter/number ranges of GPT-2's
pre-tokenizer regex) from Python's unicodedata; the fixture's "gpt2_letters"/"gpt2_numbers" come
from HF's Oniguruma instead, so the C++ test compares two independent sources.

Writes tests/fixtures/tokenizer/:
  austen_lines.bin, kjv_lines.bin  one record per line of data/austen.txt, data/kjv.txt (the text
      split on "\\n" exactly as Python's str.split("\\n")), each encoded alone with
      tok.encode(line, add_special_tokens=False). Little-endian layout:
        char[4] "GTKL"; uint32 version = 1; uint32 n_lines; uint64 whole-file FNV-1a;
        then per line: uint32 n_ids; uint64 FNV-1a 64 of the ids as little-endian int32.
      The whole-file hash is the FNV-1a 64 of every line's ids, concatenated in line order.
  cases.json  everything else, with full ids:
      "tricky": [{"text", "ids"}]  hand-picked hard strings (unicode, whitespace, punctuation,
          special tokens inside text, very long words);
      "eval_head": {"chars", "text", "ids"}  the first 20,000 characters of data/austen-eval.txt
          encoded as ONE string (newlines included);
      "decode": [{"ids", "text"}]  id sequences whose bytes are not valid UTF-8, with HF's decode
          (skip_special_tokens=False: the lossy U+FFFD replacement of Rust's from_utf8_lossy);
      "split_excluded": code points that BLOOM's Split regex never puts inside a match, found by
          running HF's Split on every code point (the regex is Oniguruma's: White_Space plus
          ( ) | . , ! ? … 。 ， 、 । ۔ ،);
      "variants": [{"name", "patch", "cases": [{"text", "ids"}]}]  the tiny-bloom tokenizer.json
          changed by the RFC 7386 JSON merge patch "patch" (other pre-tokenizer settings, added
          tokens with lstrip/rstrip/normalized), each encoding the tricky texts;
      "gpt2_letters", "gpt2_numbers": [[first, last], ...] code point ranges that GPT-2's regex
          (ByteLevel use_regex=true) treats as \\p{L} and \\p{N}, probed through HF like the above;
      "tiny": [{"name", "tokenizer", "cases": [{"text", "ids"}]}]  hand-written tokenizer.json
          files with a few tokens, for characters outside the vocabulary (unk_token, fuse_unk, or
          silently dropped as HF does without unk_token) and the BPE merge order.
"""
import json
import struct
from pathlib import Path

from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/fixtures/tokenizer"
TOKENIZER = ROOT / "models/tiny-bloom/tokenizer.json"
BLOOM_SPLIT_REGEX = " ?[^(\\s|[.,!?…。，、।۔،])]+"

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fnv1a64(data: bytes, h: int = FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def ids_bytes(ids) -> bytes:
    return struct.pack(f"<{len(ids)}i", *ids)


TRICKY = [
    "", " ", "    ", "\t", "\t\tx", "a\r\nb", "\r\n", "\n\n\n", " leading", "trailing ",
    "  two leading", "Hello world", "Hello  world", "Hello, world!", "...!!", "…", "。",
    "Wait... what?!", "(parenthesised) [bracketed] {braced} a|b", "foo(bar)", "[x]", "a]b[c",
    "x[(y)]z", "|||", "12345 67890 3.14159 1,000,000", "café naïve résumé",
    "e\u0301 combining e\u0301\u0302\u0303", "日本語のテキスト。これは、テスト！", "中文，句号。",
    "😀 emoji 👨\u200d👩\u200d👧 family", "🇫🇷🇩🇪", "ümlaut Ärger", "Ελληνικά κείμενο",
    "русский текст", "עברית", "العربية، نص۔", "हिन्दी। वाक्य", "\u00a0nbsp\u00a0",
    "\u3000ideographic\u3000space", "line\u2028sep\u2029para", "\x0b\x0c", "\x1c\x1d\x1e\x1f",
    "\x00nul\x01", "a" * 1000, "Supercalifragilistic" * 50, " " + "x" * 3000 + " y",
    "<s>hello</s>", "x<pad>y", "<unk><unk>", "< s>", "<s >", " <s> ", "MixedCASE and ALLCAPS",
    "tab\tseparated\tvalues", "end with newline\n", "it's don't I'll we've THEY'RE",
    "http://example.com/path?q=1&r=2", "email@example.com",
    "$100 & 50% #hash @at ^caret ~tilde `tick` \\back", 'quote "double" \'single\'',
    "\u200bzero\u200bwidth", "\ufeffBOM", "\U0010ffff max \U0001f600", "ſ long s, ﬁ ligature",
    "   \n   \n", " ?!", "a ,b", "one\u00a0 two", "\u0085next line", "\u180emongolian",
    "12abc34 5x 6 ", "Mr. Knightley's   \"Emma\" -- 1815; (vol. I)",
]


def encode(tok, s):
    return tok.encode(s, add_special_tokens=False).ids


def line_fixture(tok, text_path: Path, out_path: Path) -> None:
    lines = text_path.read_text(encoding="utf-8").split("\n")
    encs = tok.encode_batch(lines, add_special_tokens=False)
    whole = FNV_OFFSET
    records = []
    for enc in encs:
        b = ids_bytes(enc.ids)
        whole = fnv1a64(b, whole)
        records.append(struct.pack("<IQ", len(enc.ids), fnv1a64(b)))
    out_path.write_bytes(b"GTKL" + struct.pack("<IIQ", 1, len(lines), whole) + b"".join(records))
    print(f"{out_path}: {len(lines)} lines")


def split_excluded():
    """Every code point (surrogates aside) that HF's Split with BLOOM's regex leaves outside matches."""
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Split(Regex(BLOOM_SPLIT_REGEX), behavior="isolated", invert=False)
    cps = [c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    # "a" before each probe: a match starts at every "a", so an excluded code point ends up alone
    # in a gap piece. U+0020 is the regex's optional prefix and is checked on its own.
    pieces = split.pre_tokenize_str("".join("a" + chr(c) for c in cps) + "a")
    excluded = {ord(ch) for p, _ in pieces if not p.lstrip(" ").startswith("a") for ch in p}
    assert [p for p, _ in split.pre_tokenize_str("a  b")] == ["a", " ", " b"]
    excluded.add(0x20)
    # U+0000 cannot ride in the probe string's middle safely in every binding; probe it alone.
    if len(split.pre_tokenize_str("a\x00a")) != 1:
        excluded.add(0)
    return sorted(excluded)


GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def to_ranges(cps):
    out = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def gpt2_classes():
    """The code points GPT-2's regex (as HF tokenizers compiles it) treats as letters / numbers."""
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Split(Regex(GPT2_REGEX), behavior="isolated", invert=False)
    cps = [c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]

    def joined_with(sep):  # code points that end up in one piece with the separator around them
        pieces = split.pre_tokenize_str("".join(sep + chr(c) for c in cps) + sep)
        return {ord(ch) for p, _ in pieces if sep in p for ch in p} - {ord(sep)}

    letters = joined_with("a") | {ord("a")}
    numbers = joined_with("1") | {ord("1")}
    letters.discard(0x20)  # the optional space before a run
    numbers.discard(0x20)
    assert not letters & numbers, sorted(letters & numbers)
    return to_ranges(letters), to_ranges(numbers)


def write_unicode_tables(path: Path) -> None:
    import unicodedata

    assert unicodedata.unidata_version == "14.0.0", unicodedata.unidata_version
    def table(name, prefix):
        ranges = to_ranges(c for c in range(0x110000) if unicodedata.category(chr(c))[0] == prefix)
        rows = [", ".join(f"{{0x{a:X}, 0x{b:X}}}" for a, b in ranges[i:i + 4])
                for i in range(0, len(ranges), 4)]
        body = ",\n".join("    " + r for r in rows)
        return (f"const CodePointRange {name}[] = {{\n{body}}};\n")
    path.write_text(
        "// Generated by scripts/make_tokenizer_fixtures.py --unicode-tables from Python's\n"
        "// unicodedata (Unicode 14.0.0, the version of the Oniguruma in HF tokenizers 0.15).\n"
        "// Do not edit; tests/unit/test_tokenizer.cpp checks it against HF's regex engine.\n"
        "#include <algorithm>\n#include <iterator>\n\n#include \"io/tokenizer/tokenizer_unicode.h\"\n\n"
        "namespace gptqd::tok {\nnamespace {\n\nstruct CodePointRange {\n  char32_t first, last;\n};\n\n"
        + table("kLetters", "L") + "\n" + table("kNumbers", "N") +
        "\ntemplate <size_t N>\nbool in_table(const CodePointRange (&table)[N], char32_t cp) {\n"
        "  const auto* it = std::upper_bound(std::begin(table), std::end(table), cp,\n"
        "                                    [](char32_t c, const CodePointRange& r) { return c < r.first; });\n"
        "  return it != std::begin(table) && cp <= std::prev(it)->last;\n}\n\n}  // namespace\n\n"
        "bool is_letter(char32_t cp) { return in_table(kLetters, cp); }\n"
        "bool is_number(char32_t cp) { return in_table(kNumbers, cp); }\n\n"
        "}  // namespace gptqd::tok\n", encoding="utf-8")
    import shutil
    import subprocess

    if shutil.which("clang-format"):  # the repo's .clang-format, so a rerun leaves no diff
        subprocess.run(["clang-format", "-i", str(path)], check=True, cwd=ROOT)
    print(f"{path}: written")


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (what nlohmann::json::merge_patch does on the C++ side)."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    target = dict(target)
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


def added(id_, content, **kw):
    tok = {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
           "normalized": False, "special": False}
    tok.update(kw)
    return tok


def variants(base_json):
    specials = base_json["added_tokens"]
    split = lambda pattern, behavior, invert=False: {
        "type": "Split", "pattern": pattern, "behavior": behavior, "invert": invert}
    byte_level = lambda prefix=False, regex=False: {
        "type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": regex}
    seq = lambda *steps: {"pre_tokenizer": {"type": "Sequence", "pretokenizers": list(steps)}}
    bloom = {"Regex": BLOOM_SPLIT_REGEX}
    out = [
        ("prefix_space", seq(split(bloom, "Isolated"), byte_level(prefix=True))),
        ("byte_level_only", {"pre_tokenizer": byte_level()}),
        ("gpt2_regex", {"pre_tokenizer": byte_level(prefix=False, regex=True)}),
        ("gpt2_regex_prefix", seq(byte_level(prefix=True, regex=True))),
        ("split_removed", seq(split(bloom, "Removed"), byte_level())),
        ("split_merged_prev", seq(split(bloom, "MergedWithPrevious"), byte_level())),
        ("split_merged_next", seq(split(bloom, "MergedWithNext"), byte_level())),
        ("split_contiguous", seq(split(bloom, "Contiguous"), byte_level())),
        ("split_invert", seq(split(bloom, "Isolated", invert=True), byte_level())),
        ("split_string", seq(split({"String": "e"}, "Removed"), split({"String": ", "}, "Isolated"),
                             byte_level())),
        ("added_tokens", {"added_tokens": specials + [
            added(4096, "<mask>", lstrip=True, special=True),
            added(4097, "[SEP]", rstrip=True),
            added(4098, "[BOTH]", lstrip=True, rstrip=True),
            added(4099, "ell", normalized=True),
            added(4100, "<s>hel", normalized=True),
            added(4101, "ab"),
            added(4102, "abc"),
            added(4103, " world"),
        ]}),
    ]
    return out


def variant_texts():
    extra = ["a <mask> b", "a\t\n <mask>\n c", "x[SEP]  \ty", "[BOTH]", "  [BOTH]  z",
             "hello world", "Hello <s>hello", "abcd ab abc", "x<mask><mask>y", "foo, bar, baz",
             "x[SEP] world", "x[SEP]  world!", "a <mask> <mask>  b"]  # rstrip overlapping a match
    return [s for s in TRICKY if len(s) <= 200] + extra


def tiny_models():
    vocab = {"<unk>": 0, "a": 1, "b": 2, "c": 3, "Ġ": 4, "ab": 5, "bc": 6, "abc": 7, "aa": 8,
             "aaa": 9, "Ġa": 10}
    merges = ["a b", "b c", "ab c", "a a", "aa a", "Ġ a"]
    def tiny(unk_token, fuse_unk):
        return {"version": "1.0", "truncation": None, "padding": None,
                "added_tokens": [added(0, "<unk>", special=True)], "normalizer": None,
                "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                                  "trim_offsets": True, "use_regex": False},
                "post_processor": None,
                "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                            "use_regex": True},
                "model": {"type": "BPE", "dropout": None, "unk_token": unk_token,
                          "continuing_subword_prefix": None, "end_of_word_suffix": None,
                          "fuse_unk": fuse_unk, "byte_fallback": False, "vocab": vocab,
                          "merges": merges}}
    texts = ["abc", "axxb", "xyz", "aaaaa", "aaaa", "abcabc", "a b", "bca", "ab\u00e9c", "x<unk>y",
             "", "abab", "a aa aaa"]
    out = []
    for name, unk, fuse in (("no_unk", None, False), ("unk", "<unk>", False),
                            ("unk_fused", "<unk>", True)):
        spec = tiny(unk, fuse)
        tok = Tokenizer.from_str(json.dumps(spec))
        out.append({"name": name, "tokenizer": spec,
                    "cases": [{"text": s, "ids": encode(tok, s)} for s in texts]})
    return out


def main() -> None:
    import sys

    if "--unicode-tables" in sys.argv[1:]:
        write_unicode_tables(ROOT / "io/tokenizer/tokenizer_unicode_tables.cpp")
    OUT.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_file(str(TOKENIZER))
    line_fixture(tok, ROOT / "data/austen.txt", OUT / "austen_lines.bin")
    line_fixture(tok, ROOT / "data/kjv.txt", OUT / "kjv_lines.bin")

    for s in TRICKY:  # HF's byte-level round trip is exact; the C++ test relies on it
        assert tok.decode(encode(tok, s), skip_special_tokens=False) == s, repr(s)
    tricky = [{"text": s, "ids": encode(tok, s)} for s in TRICKY]

    head = (ROOT / "data/austen-eval.txt").read_text(encoding="utf-8")[:20000]
    eval_head = {"chars": 20000, "text": head, "ids": encode(tok, head)}

    # Sequences of single-byte tokens that are not valid UTF-8 (and some that are).
    bytes_to_unicode = _bytes_to_unicode()
    byte_tok = lambda b: tok.token_to_id(bytes_to_unicode[b])
    decode_cases = []
    for seq in ([0xE2, 0x82], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98], [0xFF], [0xC0, 0x80],
                [0xED, 0xA0, 0x80], [0x41, 0xE2, 0x42], [0xF0, 0x9F, 0x98, 0x80, 0x80],
                [0xF4, 0x90, 0x80, 0x80], [0xE0, 0x80, 0x41], [0x80, 0x80, 0xC3], [0xF8, 0x88]):
        ids = [byte_tok(b) for b in seq]
        decode_cases.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False)})
    mixed = [1] + encode(tok, "Hi there") + [2, 3, 0]
    decode_cases.append({"ids": mixed, "text": tok.decode(mixed, skip_special_tokens=False)})

    base_json = json.loads(TOKENIZER.read_text(encoding="utf-8"))
    var_out = []
    for name, patch in variants(base_json):
        vtok = Tokenizer.from_str(json.dumps(merge_patch(base_json, patch)))
        var_out.append({"name": name, "patch": patch,
                        "cases": [{"text": s, "ids": encode(vtok, s)} for s in variant_texts()]})

    letters, numbers = gpt2_classes()
    cases = {"tricky": tricky, "eval_head": eval_head, "decode": decode_cases,
             "split_excluded": split_excluded(), "variants": var_out,
             "gpt2_letters": letters, "gpt2_numbers": numbers,
             "tiny": tiny_models()}
    (OUT / "cases.json").write_text(json.dumps(cases, ensure_ascii=True, separators=(",", ":")),
                                    encoding="utf-8")
    print(f"{OUT / 'cases.json'}: {len(tricky)} tricky strings, {len(var_out)} variants")


def _bytes_to_unicode():
    """GPT-2's byte -> character table (the one ByteLevel uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


if __name__ == "__main__":
    main()
