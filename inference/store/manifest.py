"""manifest.json: what a converted model folder holds, read by the engine and the model manager."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def sha256_file(path: Path, chunk: int = 16 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ModelFile:
    file: str
    quantization: str
    size_bytes: int
    sha256: str


@dataclass
class Manifest:
    name: str
    text_architecture: str  # "qwen2" | "llama" | "qwen2vl"
    text: ModelFile
    mmproj: ModelFile
    context_length: int
    hidden_size: int
    image_size: int
    image_tokens: int
    vision_layers_used: int
    source: dict = field(default_factory=dict)
    created: str = ""
    format: int = FORMAT_VERSION
    family: str = "llava"  # "llava" (HuatuoGPT-Vision-7B/34B) | "qwen2.5-vl" (an image at its own size)
    # Qwen2.5-VL: the pixel budget an image is smart-resized into (image_tokens is then the most per image).
    image_min_pixels: int | None = None
    image_max_pixels: int | None = None

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_NAME
        partial = path.with_name(path.name + ".part")
        partial.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False))
        os.replace(partial, path)
        return path

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        data = json.loads((Path(folder) / MANIFEST_NAME).read_text())
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"{folder}/{MANIFEST_NAME}: unknown manifest format {data.get('format')!r}")
        data["text"] = ModelFile(**data["text"])
        data["mmproj"] = ModelFile(**data["mmproj"])
        return cls(**data)

    def paths(self, folder: Path) -> tuple[Path, Path]:
        return Path(folder) / self.text.file, Path(folder) / self.mmproj.file
