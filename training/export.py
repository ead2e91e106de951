"""A training run -> a consolidated checkpoint in the original HuatuoGPT-Vision layout.

The output is what the released models look like (and what `huatuo convert` reads without options):
bf16 safetensors shards + ``model.safetensors.index.json``, ``config.json`` (``LlavaQwen2ForCausalLM`` /
``LlavaLlamaForCausalLM``), ``generation_config.json``, the tokenizer files, and CLIP's configuration under
``vit/clip_vit_large_patch14_336/``. Tensors are read from the sharded checkpoint a batch at a time, so
memory stays bounded whatever the model's size; no process group is needed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from conversion.checkpoint import stored_name
from inference.imageprep import CLIP_MEAN, CLIP_STD

from . import checkpoint
from .model import ModelSpec, save_spec

MODEL_DIR = "model"  # inside RUN_DIR: model.json, tokenizer/, vit/ (recorded when the run starts)
VIT_DIR = "vit/clip_vit_large_patch14_336"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                   "special_tokens_map.json", "added_tokens.json", "chat_template.jinja")
SHARD_BYTES = 4 * 1024**3


class ExportError(ValueError):
    """A run folder that cannot be exported; the message says what is missing."""


def record_model(spec: ModelSpec, run_dir: Path, max_length: int) -> None:
    """Keep beside the run what the export will need: configs, tokenizer files, CLIP's configuration."""
    folder = run_dir / MODEL_DIR
    save_spec(spec, folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["max_length"] = max_length
    (folder / "model.json").write_text(json.dumps(meta, indent=2))
    tokenizer = folder / "tokenizer"
    tokenizer.mkdir(exist_ok=True)
    for name in TOKENIZER_FILES:
        if spec.tokenizer_dir is not None and (spec.tokenizer_dir / name).is_file():
            shutil.copy2(spec.tokenizer_dir / name, tokenizer / name)
    vit = folder / "vit"
    vit.mkdir(exist_ok=True)
    v = spec.vision_config
    copied = spec.vit_dir is not None and (spec.vit_dir / "config.json").is_file()
    if copied:
        shutil.copy2(spec.vit_dir / "config.json", vit / "config.json")
    else:
        clip = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 768,
                "vision_config": v.to_dict(), "text_config": {"model_type": "clip_text_model"}}
        (vit / "config.json").write_text(json.dumps(clip, indent=2, default=str))
    preprocessor = spec.vit_dir / "preprocessor_config.json" if spec.vit_dir else None
    if preprocessor is not None and preprocessor.is_file():
        shutil.copy2(preprocessor, vit / "preprocessor_config.json")
    else:
        (vit / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(v.image_size), indent=2))


def export_checkpoint(run_dir: str | Path, out: str | Path, step: int | None = None, overwrite: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the run's latest (or given step's) checkpoint to `out`; returns `out`."""
    run_dir, out = Path(run_dir), Path(out)
    meta_path = run_dir / MODEL_DIR / "model.json"
    if not meta_path.is_file():
        raise ExportError(f"{run_dir}: not a training run folder ({MODEL_DIR}/model.json is missing)")
    source = checkpoint.step_dir(run_dir, step) if step is not None else checkpoint.latest(run_dir)
    if source is None or not (source / "trainer_state.json").is_file():
        raise ExportError(f"{run_dir}: no finished checkpoint {'for step ' + str(step) if step else 'yet'}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} exists and is not empty; choose another folder")
    meta = json.loads(meta_path.read_text())
    tie = bool(meta["text_config"].get("tie_word_embeddings"))

    shapes = checkpoint.model_tensor_shapes(source)
    names = [n for n in _ordered(shapes) if not (tie and n == "text.lm_head.weight")]
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        _write_folder(run_dir, source, meta, names, shapes, partial, progress)
    except BaseException:  # cancelled or failed: no half-written folder is left behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return out


def _write_folder(run_dir: Path, source: Path, meta: dict, names: list[str], shapes: dict, partial: Path,
                  progress) -> None:
    weight_map = _write_shards(source, names, partial, progress)
    total = sum(_nbytes(shapes[n][0]) for n in names)
    (partial / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (partial / "config.json").write_text(json.dumps(original_config(meta), indent=2))
    t = meta["text_config"]
    (partial / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": t.get("bos_token_id"), "eos_token_id": t.get("eos_token_id"), "do_sample": False}, indent=2))
    for item in (run_dir / MODEL_DIR / "tokenizer").iterdir():
        shutil.copy2(item, partial / item.name)
    shutil.copytree(run_dir / MODEL_DIR / "vit", partial / VIT_DIR)
    trainer_state = json.loads((source / "trainer_state.json").read_text())
    (partial / "training_state.json").write_text(json.dumps({"checkpoint": source.name, **trainer_state}, indent=2))


def original_config(meta: dict) -> dict:
    """config.json of the released layout: the language model's settings plus the LLaVA ones."""
    t, v, family = meta["text_config"], meta["vision_config"], meta["family"]
    rope_theta = t.get("rope_theta") or (t.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    text = {k: t.get(k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                  "num_key_value_heads", "vocab_size", "hidden_act", "max_position_embeddings",
                                  "rms_norm_eps", "tie_word_embeddings", "bos_token_id", "eos_token_id")}
    text.update(model_type=family, rope_theta=rope_theta)
    if family == "qwen2":
        text.update(use_sliding_window=False, sliding_window=None, max_window_layers=t["num_hidden_layers"])
    else:
        text.update(attention_bias=False, pretraining_tp=1, rope_scaling=None)
    return {
        **text,
        "architectures": ["LlavaQwen2ForCausalLM" if family == "qwen2" else "LlavaLlamaForCausalLM"],
        "model_type": "llava_qwen2" if family == "qwen2" else "llava_llama",
        "mm_hidden_size": v["hidden_size"],
        "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_feature": "patch",
        "mm_vision_select_layer": meta["select_layer"],
        "mm_vision_tower": "./" + VIT_DIR,
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "image_aspect_ratio": "pad",
        "tokenizer_model_max_length": meta.get("max_length", 4096),
        "tokenizer_padding_side": "right",
        "use_mm_proj": True,
        "torch_dtype": "bfloat16",
    }


def _ordered(shapes: dict) -> list[str]:
    """Language model first (in layer order), then vision tower, then projector, as the releases are."""
    def key(name: str):
        part = 0 if name.startswith("text.") else 1 if name.startswith("vision.") else 2
        return part, [int(p) for p in name.split(".") if p.isdigit()], name

    return sorted(shapes, key=key)


def _write_shards(source: Path, names: list[str], folder: Path, progress) -> dict[str, str]:
    from safetensors.torch import save_file

    shards: list[list[str]] = []
    pending: dict[str, torch.Tensor] = {}
    size = 0

    def flush() -> None:
        save_file(pending, folder / f"shard-{len(shards) + 1}.tmp", metadata={"format": "pt"})
        shards.append(list(pending))
        pending.clear()

    for done, (name, tensor) in enumerate(checkpoint.read_model_tensors(source, names), start=1):
        tensor = tensor.to(torch.bfloat16).contiguous()
        if pending and size + tensor.nbytes > SHARD_BYTES:
            flush()
            size = 0
        pending[stored_name(name, "original")] = tensor
        size += tensor.nbytes
        if progress is not None:
            progress(done, len(names))
    flush()
    weight_map = {}
    for number, keys in enumerate(shards, start=1):
        shard = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        (folder / f"shard-{number}.tmp").rename(folder / shard)
        weight_map.update(dict.fromkeys(keys, shard))
    return weight_map


def _nbytes(shape: tuple[int, ...]) -> int:
    count = 1
    for n in shape:
        count *= n
    return count * 2  # bf16


def preprocessor_config(size: int) -> dict:
    """CLIP's image processor settings at `size` (what the released vit folder carries)."""
    return {
        "crop_size": {"height": size, "width": size},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
        "image_processor_type": "CLIPImageProcessor",
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": size},
    }
