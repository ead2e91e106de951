"""Where the starting weights come from, seen through canonical tensor names.

Canonical names are those of `conversion.checkpoint` and of the training model's own parameters:
``text.<Qwen2/Llama name>``, ``vision.<CLIP vision name>``, ``projector.{0,2}.{weight,bias}``.
Tensors are read a row range at a time, so that each rank reads only its own shard of a large model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from conversion.checkpoint import Checkpoint

# What a CLIPModel / CLIPVisionModel file holds besides the vision transformer.
_CLIP_SKIPPED = ("text_model.", "visual_projection.", "text_projection.", "logit_scale")


class WeightError(ValueError):
    """Weights that cannot be used: the message names the file and the tensor."""


class WeightSource:
    """Canonical name -> a reader of (row start, row stop) -> tensor, plus each tensor's full shape."""

    def __init__(self) -> None:
        self._readers: dict[str, Callable[[int | None, int | None], torch.Tensor]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._origin: dict[str, str] = {}
        self._open_files: dict[Path, object] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._readers

    def names(self) -> list[str]:
        return list(self._readers)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def origin(self, name: str) -> str:
        return self._origin[name]

    def read(self, name: str, start: int | None = None, stop: int | None = None) -> torch.Tensor:
        return self._readers[name](start, stop)

    def add_safetensors(self, path: Path, stored: str, name: str) -> None:
        from safetensors import safe_open

        handle = self._open_files.get(path)
        if handle is None:  # one open (memory-mapped) handle per file
            handle = self._open_files[path] = safe_open(str(path), framework="pt")
        tensor_slice = handle.get_slice(stored)

        def read(start: int | None, stop: int | None) -> torch.Tensor:
            if start is None:
                return tensor_slice[:]
            return tensor_slice[start:stop]

        self._readers[name] = read
        self._shapes[name] = tuple(tensor_slice.get_shape())
        self._origin[name] = f"{path}:{stored}"

    def add_tensor(self, tensor: torch.Tensor, name: str, origin: str) -> None:
        self._readers[name] = lambda start, stop: tensor if start is None else tensor[start:stop]
        self._shapes[name] = tuple(tensor.shape)
        self._origin[name] = origin

    def add_folder(self, folder: Path, rename: Callable[[str], str | None]) -> None:
        """Every tensor of a transformers weights folder (safetensors, else PyTorch .bin), renamed."""
        files = _weight_files(folder)
        for path in files:
            if path.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(path), framework="pt") as handle:
                    keys = list(handle.keys())
                for key in keys:
                    if (name := rename(key)) is not None:
                        self.add_safetensors(path, key, name)
            else:
                state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
                for key, tensor in state.items():
                    if (name := rename(key)) is not None:
                        self.add_tensor(tensor, name, f"{path}:{key}")


def from_checkpoint(ckpt: Checkpoint) -> WeightSource:
    """A HuatuoGPT-Vision checkpoint in either layout (names already canonical in `Checkpoint`)."""
    source = WeightSource()
    for name, stored in ckpt.tensors.items():
        source.add_safetensors(stored.path, stored.name, name)
    return source


def from_parts(base_llm: Path, vision_tower: Path, projector: Path | None = None) -> WeightSource:
    """A base language model folder, a CLIP folder and, optionally, a LLaVA stage-1 projector file."""
    source = WeightSource()
    source.add_folder(base_llm, _llm_name)
    if not any(n.startswith("text.model.embed_tokens.") for n in source.names()):
        raise WeightError(f"{base_llm}: no language model weights (model.embed_tokens.weight) found")
    before = len(source.names())
    source.add_folder(vision_tower, _clip_name)
    if len(source.names()) == before:
        raise WeightError(f"{vision_tower}: no CLIP vision weights (vision_model.*) found")
    if projector is not None:
        found = 0
        for path in [projector] if projector.is_file() else _weight_files(projector):
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
            for key, tensor in state.items():
                if (name := _projector_name(key)) is not None:
                    source.add_tensor(tensor, name, f"{path}:{key}")
                    found += 1
        if found != 4:
            raise WeightError(f"{projector}: expected the 4 tensors of an mlp2x_gelu projector, found {found}")
    return source


def _weight_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise WeightError(f"{folder}: no such model folder")
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            missing = [n for n in names if not (folder / n).is_file()]
            if missing:
                raise WeightError(f"{folder}: {missing[0]}, named in {index_name}, is missing")
            return [folder / n for n in names]
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise WeightError(f"{folder}: no weights (*.safetensors or pytorch_model*.bin)")
    return files


def _llm_name(key: str) -> str | None:
    if key.startswith("model.") or key.startswith("lm_head."):
        return "text." + key
    return None


def _clip_name(key: str) -> str | None:
    if key.startswith(_CLIP_SKIPPED) or key.endswith("position_ids"):
        return None
    if key.startswith("vision_model."):
        return "vision." + key[len("vision_model.") :]
    if key.startswith(("embeddings.", "pre_layrnorm.", "encoder.", "post_layernorm.")):
        return "vision." + key
    return None


def _projector_name(key: str) -> str | None:
    marker = "mm_projector."
    if marker in key:
        return "projector." + key.split(marker, 1)[1]
    return None
