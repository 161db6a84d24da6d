#!/usr/bin/env python3
"""config.json as transformers 5.x writes it, for every family fixture (issue 20 item 6).

transformers 5 moved keys: rope_theta and rope_scaling became one rope_parameters object, dtype
replaced torch_dtype, tie_word_embeddings and pad_token_id are written out. A user who loads a
4.x checkpoint in 5.x and saves it gets such a file; gptqd must read it as the same model.

For each 4.x fixture tests/fixtures/families/<case> (made by make_family_fixtures.py) and for
models/tiny-bloom, this loads the model with AutoModelForCausalLM.from_pretrained (the 4.x
config.json and weights), saves it with save_pretrained, and keeps only the config.json:
    tests/fixtures/families/tf5_<case>/config.json
    tests/fixtures/families/tf5_<case>/{model,forward,perplexity}.safetensors  -> ../<case>/...
                                                  (relative symlinks: the same weights and goldens)
    tests/fixtures/families/tf5_tiny_bloom/config.json
tests/unit/test_config_versions.cpp reads both files into the same ModelConfig, and
test_family_forward.cpp runs the tf5_ cases against the 4.x goldens.

llama_gqa (hidden 96, 9 heads, head_dim 64) is refused by LlamaConfig.validate_architecture
since transformers 5.4 (hidden_size % num_attention_heads != 0 even with head_dim given); its
file is written with that check switched off: the 5.x format of the same config.

Regenerate (any machine that reaches PyPI; about 3 GB of torch wheels the first time):
    python3 -m venv /tmp/venv-tf5
    /tmp/venv-tf5/bin/pip install torch==2.15.0 transformers==5.25.0 safetensors==0.8.0
    /tmp/venv-tf5/bin/python scripts/make_tf5_configs.py
"""
import json
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ROOT / "tests" / "fixtures" / "families"
CASES = ["llama_gqa", "llama3_rope", "llama_linear", "mistral", "qwen2", "qwen3", "opt_pre",
         "opt_post"]
LINKED = ["model.safetensors", "forward.safetensors", "perplexity.safetensors"]


def resave_config(src: Path) -> dict:
    """from_pretrained(src) then save_pretrained: the config.json transformers 5 writes."""
    cls = transformers.LlamaConfig
    validators = getattr(cls, "__class_validators__", None)
    saved = cls.__dict__.get("validate_architecture")
    if saved is not None:
        # huggingface_hub's strict dataclass collected the validator when the class was made:
        # drop it from that list too.
        cls.validate_architecture = lambda self: None
        if validators is not None:
            cls.__class_validators__ = [v for v in validators
                                        if v.__name__ != "validate_architecture"]
    try:
        model = AutoModelForCausalLM.from_pretrained(src)
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            return json.loads((Path(tmp) / "config.json").read_text())
    finally:
        if saved is not None:
            cls.validate_architecture = saved
            if validators is not None:
                cls.__class_validators__ = validators


def write(case_dir: Path, config: dict) -> None:
    case_dir.mkdir(parents=True, exist_ok=True)
    (case_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def main() -> None:
    assert transformers.__version__.startswith("5."), transformers.__version__
    for case in CASES:
        out = FAMILIES / f"tf5_{case}"
        write(out, resave_config(FAMILIES / case))
        for name in LINKED:
            link = out / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(Path("..") / case / name)
        print(f"{out.relative_to(ROOT)}/config.json")
    write(FAMILIES / "tf5_tiny_bloom", resave_config(ROOT / "models" / "tiny-bloom"))
    print("tests/fixtures/families/tf5_tiny_bloom/config.json")
    shutil.rmtree(ROOT / "scripts" / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    main()
