"""The models the app offers to install (resources/models.json), with their size, memory need and fit here.

Two kinds of entry: "gguf" (a ready text GGUF + mmproj GGUF pair in a Hugging Face repo, sizes and SHA-256 known)
and "checkpoint" (a released checkpoint, downloaded and converted on this machine; its sizes are estimates from
the parameter counts). One JSON model with several quantizations becomes one entry per quantization.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .. import families, quantization
from ..hardware import COMPUTE_OVERHEAD_BYTES, Fit, assess, kv_cache_bytes, memory_bandwidth_gb_s
from .gguf_check import PairInfo

CATALOGUE_FORMAT = 1
KINDS = ("gguf", "checkpoint")
# What conversion reads from a checkpoint repo: configs, tokenizer files, safetensors shards. Not the separate
# CLIP weights (vit/*.bin): the vision weights are taken from the model checkpoint itself.
CHECKPOINT_PATTERNS = ("*.json", "*.safetensors", "*.txt", "tokenizer.model")
_ARCHITECTURE_KEYS = ("architecture", "context_length", "hidden_size", "n_layers", "n_kv_heads", "head_dim",
                      "image_size", "image_tokens")


class CatalogueError(Exception):
    """resources/models.json (or the given catalogue file) is malformed; the message says where."""


@dataclass(frozen=True)
class CatalogueEntry:
    name: str  # the model, e.g. "HuatuoGPT-Vision-7B"
    base: str  # its language model, e.g. "Qwen2-7B"
    quantization: str  # of the text model
    mmproj_quantization: str
    kind: str  # "gguf" | "checkpoint"
    repo_id: str
    revision: str
    text_size_bytes: int
    mmproj_size_bytes: int
    download_bytes: int  # what is fetched: the pair, or the whole checkpoint
    size_is_estimate: bool  # True where sizes come from parameter counts, not from the published files
    architecture: dict
    text_file: str | None = None  # gguf entries: paths inside the repo
    mmproj_file: str | None = None
    text_sha256: str | None = None
    mmproj_sha256: str | None = None
    allow_patterns: tuple[str, ...] = ()  # checkpoint entries: the files conversion needs
    notes: str = ""
    family: str = "llava"  # inference/families.py: "llava" | "qwen2.5-vl"

    @property
    def id(self) -> str:
        """Also the name of the folder the model is installed into."""
        return f"{self.name}-{self.quantization}"

    @property
    def size_bytes(self) -> int:
        return self.text_size_bytes + self.mmproj_size_bytes

    def pair_info(self) -> PairInfo:
        """What hardware.assess needs, from the catalogue instead of from files on disk."""
        a = self.architecture
        return PairInfo(
            text_path=Path(self.text_file or f"{self.id}.gguf"),
            mmproj_path=Path(self.mmproj_file or f"{self.name}-mmproj-{self.mmproj_quantization}.gguf"),
            architecture=a["architecture"], context_length=a["context_length"], hidden_size=a["hidden_size"],
            n_layers=a["n_layers"], n_kv_heads=a["n_kv_heads"], head_dim=a["head_dim"],
            image_size=a["image_size"], image_tokens=a["image_tokens"],
            text_bytes=self.text_size_bytes, mmproj_bytes=self.mmproj_size_bytes, family=self.family,
        )

    @property
    def ram_needed_bytes(self) -> int:
        """Weights + KV cache at the full context + compute buffers, as hardware.assess counts them."""
        pair = self.pair_info()
        return self.size_bytes + kv_cache_bytes(pair, pair.context_length) + COMPUTE_OVERHEAD_BYTES


def default_catalogue_path() -> Path:
    return Path(str(resources.files("resources") / "models.json"))


def load_catalogue(path: str | Path | None = None) -> list[CatalogueEntry]:
    path = Path(path) if path is not None else default_catalogue_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"{path}: not valid JSON ({exc})") from None
    version = data.get("format") if isinstance(data, dict) else None
    if version != CATALOGUE_FORMAT:
        raise CatalogueError(f"{path}: unknown catalogue format {version!r} (this app reads {CATALOGUE_FORMAT})")
    entries = []
    for i, model in enumerate(data.get("models", [])):
        label = model.get("name", "no name") if isinstance(model, dict) else repr(model)
        where = f"{path}: model {i + 1} ({label})"
        try:
            entries.extend(_expand(model, data))
        except KeyError as exc:
            raise CatalogueError(f"{where}: the field {exc} is missing") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise CatalogueError(f"{where}: {exc}") from None
    return entries


def _expand(model: dict, data: dict) -> list[CatalogueEntry]:
    kind = model["kind"]
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    architecture = {key: model["architecture"][key] for key in _ARCHITECTURE_KEYS}
    common = dict(
        name=model["name"], base=model["base"], kind=kind, repo_id=model["repo_id"],
        revision=model.get("revision", "main"), architecture=architecture, notes=model.get("notes", ""),
        family=families.family(model.get("family", families.LLAVA.name)).name,
    )
    if kind == "gguf":
        entries = []
        for quant, files in model["files"].items():
            text, mmproj = files["text"], files["mmproj"]
            entries.append(CatalogueEntry(
                **common, quantization=quant,
                mmproj_quantization=files.get("mmproj_quantization", quantization.default_projector(quant)),
                text_file=text["file"], mmproj_file=mmproj["file"],
                text_size_bytes=int(text["size_bytes"]), mmproj_size_bytes=int(mmproj["size_bytes"]),
                text_sha256=_sha256_or_none(text.get("sha256")), mmproj_sha256=_sha256_or_none(mmproj.get("sha256")),
                download_bytes=int(text["size_bytes"]) + int(mmproj["size_bytes"]), size_is_estimate=False,
            ))
        return entries
    # A checkpoint converted here: text weights at the chosen quantization, the vision part at its own.
    text_params, vision_params = int(model["text_parameters"]), int(model["vision_parameters"])
    download = int((text_params + vision_params) * float(data.get("checkpoint_bytes_per_weight", 2.0)))
    entries = []
    for quant in model["quantizations"]:
        mmproj_quant = model.get("mmproj_quantization", quantization.default_projector(quant))
        entries.append(CatalogueEntry(
            **common, quantization=quant, mmproj_quantization=mmproj_quant,
            text_size_bytes=int(text_params * _converted(quant, quantization.TEXT).bytes_per_weight),
            mmproj_size_bytes=int(vision_params * _converted(mmproj_quant, quantization.PROJECTOR).bytes_per_weight),
            download_bytes=download, size_is_estimate=True,
            allow_patterns=tuple(model.get("allow_patterns", CHECKPOINT_PATTERNS)),
        ))
    return entries


def _converted(name: str, possible: tuple[str, ...]) -> quantization.Quantization:
    if name not in possible:
        raise ValueError(f"the converter cannot make {name!r} (it makes {', '.join(possible)})")
    return quantization.TYPES[name]


def _sha256_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"{value!r} is not a SHA-256 (64 hex digits)")
    return value


@functools.lru_cache(maxsize=1)
def measured_bandwidth_gb_s() -> float:
    """Measured once per run: every fit label uses the same figure."""
    return memory_bandwidth_gb_s()


def fit_label(entry: CatalogueEntry, bandwidth_gb_s: float | None = None) -> Fit:
    """Will this entry run here: hardware.assess on its estimated pair, before anything is downloaded."""
    return assess(entry.pair_info(), bandwidth_gb_s=bandwidth_gb_s or measured_bandwidth_gb_s())
