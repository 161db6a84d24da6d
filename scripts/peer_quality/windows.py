"""The calibration windows and evaluation tokens every tool of scripts/peer-quality.sh gets.

    python windows.py MODEL_DIR TRAIN_TXT EVAL_TXT NSAMPLES SEQLEN SEED OUT_DIR

Writes OUT_DIR/calib.safetensors ("tokens": int32 [NSAMPLES, SEQLEN]) and OUT_DIR/eval.safetensors
("tokens": int32 [1, n], the whole eval text). The draw is gptqd's own (io/job/calibration.cpp,
the GPTQ reference's datautils.py): the text tokenized with the model's tokenizer.json without
added specials (gptqd's tokenizer gives HF's ids: docs/tokenizer.md), random.seed(SEED), then per
window i = random.randint(0, n - SEQLEN - 1), tokens[i:i+SEQLEN]. gptqd reads calib.safetensors
as calibration.tokens ([rows, seqlen]: used as is), so every tool sees the same windows by
construction. Run by peer-quality.sh in .venv-peer (tokenizers, safetensors, torch).
"""
import random
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer


def ids(tok, path):
    with open(path, encoding="utf-8") as f:
        return tok.encode(f.read(), add_special_tokens=False).ids


def main():
    model, train, evaltxt, nsamples, seqlen, seed, out = sys.argv[1:8]
    nsamples, seqlen, seed = int(nsamples), int(seqlen), int(seed)
    tok = Tokenizer.from_file(f"{model}/tokenizer.json")
    t = ids(tok, train)
    random.seed(seed)
    windows = []
    for _ in range(nsamples):
        i = random.randint(0, len(t) - seqlen - 1)
        windows.append(t[i:i + seqlen])
    save_file({"tokens": torch.tensor(windows, dtype=torch.int32)}, f"{out}/calib.safetensors")
    e = ids(tok, evaltxt)
    save_file({"tokens": torch.tensor([e], dtype=torch.int32)}, f"{out}/eval.safetensors")
    print(f"windows: {nsamples} x {seqlen} from {train} ({len(t)} tokens, seed {seed}); "
          f"eval: {evaltxt} ({len(e)} tokens, {len(e) // seqlen} windows of {seqlen})")


if __name__ == "__main__":
    main()
