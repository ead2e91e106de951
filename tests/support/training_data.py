"""Tiny base-model parts and a PubMedVision-format data set, generated offline in seconds.

For smoke runs of the training pipeline, its tests and benchmarks: ``python -m tests.support.training_data DIR``
writes ``DIR/parts/llm`` (a random Qwen2 model with a trained tokenizer), ``DIR/parts/clip`` (a random CLIP
vision tower), and ``DIR/pubmedvision/{data.json, images/}``; then
``HUATUO_TINY=DIR huatuo train --config training/configs/tiny_test.yaml`` trains on them.

The images are drawn shapes whose caption says what is drawn, so a model can learn to describe them.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from conversion.checkpoint import Checkpoint
from conversion.shapes import TINY, ModelShapes
from tests.support.checkpoints import build_checkpoint
from training.export import preprocessor_config

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json")
SHAPES = ("round", "square", "triangular")
COLOURS = {"bright": (235, 235, 230), "dark": (40, 40, 45), "grey": (130, 130, 130)}
SIDES = ("left", "right")
MODALITIES = ("CT", "MRI", "X-ray", "ultrasound")
BODY_PARTS = ("chest", "abdomen", "head", "knee")
QUESTIONS = (  # in the manner of PubMedVision's alignment questions
    "Describe the image.",
    "What does this image show?",
    "Please describe the findings in this picture.",
)


def build_parts(root: str | Path, flavour: str = "qwen2", shapes: ModelShapes = TINY) -> tuple[Path, Path]:
    """A random base language model folder and CLIP folder (``root/llm``, ``root/clip``)."""
    root = Path(root)
    whole = build_checkpoint(root / "whole", flavour, "original", shapes)
    parts = split_parts(whole, root)
    shutil.rmtree(whole)
    return parts


def split_parts(checkpoint: str | Path, root: str | Path) -> tuple[Path, Path]:
    """The language model and the CLIP tower of a HuatuoGPT-Vision checkpoint, as the transformers folders
    the real base models come in: ``root/llm`` (config, tokenizer, ``model.*`` / ``lm_head.*`` weights) and
    ``root/clip`` (CLIP config, preprocessor config, ``vision_model.*`` weights)."""
    import torch
    from safetensors.torch import save_file

    ckpt = Checkpoint(checkpoint)
    root = Path(root)
    llm, clip = root / "llm", root / "clip"
    llm.mkdir(parents=True, exist_ok=True)
    clip.mkdir(parents=True, exist_ok=True)
    text_config = ckpt.config.get("text_config", ckpt.config) if ckpt.layout == "hf" else ckpt.config
    text_keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "vocab_size", "hidden_act", "max_position_embeddings", "rms_norm_eps",
                 "rope_theta", "tie_word_embeddings", "bos_token_id", "eos_token_id", "use_sliding_window",
                 "sliding_window", "max_window_layers", "attention_bias")
    config = {k: text_config[k] for k in text_keys if k in text_config}
    family = ckpt.text.family
    config.update(model_type=family, architectures=["Qwen2ForCausalLM" if family == "qwen2" else "LlamaForCausalLM"])
    (llm / "config.json").write_text(json.dumps(config, indent=2))
    for name in TOKENIZER_FILES:
        if (ckpt.path / name).is_file():
            shutil.copy2(ckpt.path / name, llm / name)
    clip_config = {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 768,
                   "vision_config": _vision_config(ckpt), "text_config": {"model_type": "clip_text_model"}}
    (clip / "config.json").write_text(json.dumps(clip_config, indent=2))
    size = ckpt.vision.image_size
    (clip / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(size), indent=2))

    def tensors(prefix: str, stored_prefix: str) -> dict:
        return {stored_prefix + name[len(prefix):]: torch.from_numpy(t.read()).to(torch.bfloat16)
                for name, t in ckpt.tensors.items() if name.startswith(prefix)}

    save_file(tensors("text.", ""), llm / "model.safetensors", metadata={"format": "pt"})
    save_file(tensors("vision.", "vision_model."), clip / "model.safetensors", metadata={"format": "pt"})
    return llm, clip


def _vision_config(ckpt: Checkpoint) -> dict:
    v = ckpt.vision
    return {"model_type": "clip_vision_model", "hidden_size": v.hidden_size, "intermediate_size": v.ffn_size,
            "num_hidden_layers": v.n_layers, "num_attention_heads": v.n_heads, "image_size": v.image_size,
            "patch_size": v.patch_size, "hidden_act": "quick_gelu", "layer_norm_eps": v.layer_norm_eps,
            "projection_dim": 768}


def draw_case(rng: np.random.Generator, size: tuple[int, int]) -> tuple[Image.Image, str]:
    """A non-square grey picture with one drawn finding, and the words that describe it."""
    width, height = size
    shape, colour, side = rng.choice(SHAPES), rng.choice(list(COLOURS)), rng.choice(SIDES)
    background = int(rng.integers(60, 200)) if colour == "grey" else 130
    pixels = rng.normal(background, 8, (height, width)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels).convert("RGB")
    draw = ImageDraw.Draw(image)
    r = min(width, height) // 4
    cx = width // 4 if side == "left" else 3 * width // 4
    cy = height // 2
    fill = COLOURS[colour]
    if shape == "round":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return image, f"a {colour} {shape} lesion on the {side} side"


def build_pubmedvision(root: str | Path, n_records: int = 64, seed: int = 0, multi_image_every: int = 4) -> Path:
    """``root/data.json`` with PubMedVision's fields (images relative to root) and the images; returns the
    JSON path. Every `multi_image_every`-th record has two images."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    for number in range(n_records):
        modality, body_part = rng.choice(MODALITIES), rng.choice(BODY_PARTS)
        n_images = 2 if multi_image_every and number % multi_image_every == multi_image_every - 1 else 1
        paths, findings = [], []
        for k in range(n_images):
            size = (int(rng.integers(60, 110)), int(rng.integers(50, 100)))
            image, finding = draw_case(rng, size)
            path = f"images/{number:06d}_{k}.png"
            image.save(root / path)
            paths.append(path)
            findings.append(finding)
        caption = f"This {modality} image of the {body_part} shows " + " and ".join(findings) + "."
        records.append({
            "id": f"synthetic-{number:06d}",
            "image": paths,
            "body_part": str(body_part),
            "modality": str(modality),
            "conversations": [
                {"from": "human", "value": str(rng.choice(QUESTIONS))},
                {"from": "gpt", "value": caption},
            ],
        })
    path = root / "data.json"
    path.write_text(json.dumps(records, indent=1))
    return path


def build_all(root: str | Path, n_records: int = 64) -> dict[str, Path]:
    root = Path(root)
    llm, clip = build_parts(root / "parts")
    data = build_pubmedvision(root / "pubmedvision", n_records)
    return {"llm": llm, "clip": clip, "data": data}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.training_data", description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write parts/ and pubmedvision/ into")
    parser.add_argument("--records", type=int, default=64)
    args = parser.parse_args(argv)
    paths = build_all(args.out, args.records)
    for name, path in paths.items():
        print(f"{name}: {path}")
    print(f"train with: HUATUO_TINY={Path(args.out).resolve()} huatuo train --config training/configs/tiny_test.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
