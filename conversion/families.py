"""The model families `huatuo convert` knows, and which one a checkpoint folder belongs to.

A family is a checkpoint class that reads one kind of release and writes it for llama.cpp. It has
``FAMILY`` (the name a manifest records) and a module-level ``claims(config)`` (does config.json describe it?);
its instances have ``path``, ``text`` (a `TextSpec`: architecture, sizes, context), ``tensors`` (canonical
names, ``text.*`` for the language model), ``identity()``, ``write_text_gguf(path, weight_type, on_bytes,
name)``, ``write_mmproj_gguf(...)`` and ``manifest_fields()``. Each class checks that the tensor names agree
with the config; the folder's name never matters.

Adding a family: such a class with its GGUF writers, a transformers reference for verification, a random
checkpoint in tests/support, and one entry in `FAMILIES`.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import qwen25vl
from .checkpoint import Checkpoint
from .errors import ConversionError

# (claims(config), checkpoint class), tried in order; LLaVA (HuatuoGPT-Vision's original models) comes last
# and explains what it expected when nothing else matches.
FAMILIES = [(qwen25vl.claims, qwen25vl.Qwen25VLCheckpoint)]
FALLBACK = Checkpoint

# Vision-language models close enough to be mistaken for a supported one: refused by name.
UNSUPPORTED = {
    "qwen2_vl": "Qwen2-VL", "Qwen2VLForConditionalGeneration": "Qwen2-VL",
    "qwen3_vl": "Qwen3-VL", "Qwen3VLForConditionalGeneration": "Qwen3-VL",
    "qwen3_vl_moe": "Qwen3-VL-MoE", "Qwen3VLMoeForConditionalGeneration": "Qwen3-VL-MoE",
    "qwen2_5_omni": "Qwen2.5-Omni", "Qwen2_5OmniForConditionalGeneration": "Qwen2.5-Omni",
}


def open_checkpoint(path: str | Path):
    """The checkpoint in `path`, read by the family its config.json and tensor names belong to."""
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ConversionError(f"{path}: no config.json, so this is not a model checkpoint folder")
    try:
        config = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConversionError(f"{config_path}: not valid JSON ({exc})") from None
    for claims, family in FAMILIES:
        if claims(config):
            return family(path)
    for key in [config.get("model_type"), *(config.get("architectures") or [])]:
        if key in UNSUPPORTED:
            raise ConversionError(
                f"{path}: this is a {UNSUPPORTED[key]} checkpoint ({key}), which is not supported; "
                "HuatuoGPT-Vision's Qwen releases are Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration)"
            )
    return FALLBACK(path)
