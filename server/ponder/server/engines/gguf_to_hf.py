"""Convert a GGUF checkpoint into a Hugging Face folder that vLLM can load.

Run by the interpreter that has vLLM (and so torch and transformers), which
is often not Ponder's own: this file imports nothing from Ponder.

transformers reads GGUF (dequantising it) but refuses to save a model it
loaded from GGUF, so the model is rebuilt from its config, given the loaded
weights, and saved in bf16.

    python gguf_to_hf.py MODEL.gguf OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path


def convert(gguf_file: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = loaded.config
    # The weights are saved dequantised; a leftover GGUF quantization entry
    # would make vLLM try to load them as GGUF.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    model = model.to(torch.bfloat16)
    partial = out_dir.with_name(out_dir.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    # Rename last, so an interrupted conversion is never taken for a finished one.
    partial.rename(out_dir)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    gguf_file, out_dir = Path(argv[0]), Path(argv[1])
    if (out_dir / "config.json").exists():
        return 0
    convert(gguf_file, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
