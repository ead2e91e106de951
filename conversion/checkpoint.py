"""A HuatuoGPT-Vision checkpoint folder, in either on-disk layout, seen through canonical tensor names.

Layouts (detected from config.json *and* the tensor names, never from the folder name):
- ``original``: the released HuatuoGPT-Vision code (`LlavaQwen2ForCausalLM` / `LlavaLlamaForCausalLM`),
  keys ``model.mm_projector.*``, ``model.vision_tower.vision_tower.vision_model.*``, ``model.layers.*``.
- ``hf``: transformers' `LlavaForConditionalGeneration` (the ``-hf`` releases), keys as saved by
  transformers 4 (``language_model.model.*``) or 5 (``model.language_model.*``).

Canonical names: ``text.<Qwen2/Llama name>`` (e.g. ``text.model.layers.0.self_attn.q_proj.weight``,
``text.lm_head.weight``), ``vision.<CLIP vision_model name>`` and ``projector.{0,2}.{weight,bias}``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ConversionError
from .safetensors_reader import StoredTensor, read_checkpoint_tensors

TEXT_FAMILIES = {"qwen2": "qwen2", "llava_qwen2": "qwen2", "llama": "llama", "llava_llama": "llama"}

# (prefix in the file, canonical prefix), most specific first.
_PREFIXES = {
    "original": [
        ("model.mm_projector.", "projector."),
        ("model.vision_tower.vision_tower.vision_model.", "vision."),
        ("model.", "text.model."),
        ("lm_head.", "text.lm_head."),
    ],
    "hf": [
        ("multi_modal_projector.linear_1.", "projector.0."),
        ("multi_modal_projector.linear_2.", "projector.2."),
        ("model.multi_modal_projector.linear_1.", "projector.0."),
        ("model.multi_modal_projector.linear_2.", "projector.2."),
        ("vision_tower.vision_model.", "vision."),
        ("model.vision_tower.vision_model.", "vision."),
        ("model.vision_tower.", "vision."),
        ("language_model.model.", "text.model."),
        ("language_model.lm_head.", "text.lm_head."),
        ("model.language_model.", "text.model."),
        ("lm_head.", "text.lm_head."),
    ],
}


@dataclass(frozen=True)
class TextSpec:
    family: str  # "qwen2" or "llama"
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_size: int
    vocab_size: int
    rope_theta: float
    rms_norm_eps: float
    context_length: int
    tie_embeddings: bool

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_heads


@dataclass(frozen=True)
class VisionSpec:
    image_size: int
    patch_size: int
    hidden_size: int
    n_layers: int  # layers in the checkpoint
    n_layers_used: int  # layers whose output the projector reads (L-1 for select layer -2)
    n_heads: int
    ffn_size: int
    layer_norm_eps: float
    projector_dim: int

    @property
    def n_image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class Checkpoint:
    """Config, specs and lazily read tensors of one LLaVA-style HuatuoGPT-Vision checkpoint folder."""

    FAMILY = "llava"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        config_path = self.path / "config.json"
        if not config_path.is_file():
            raise ConversionError(f"{self.path}: no config.json, so this is not a model checkpoint folder")
        self.config = json.loads(config_path.read_text())
        self._stored = read_checkpoint_tensors(self.path)
        self.layout = _detect_layout(self.config, self._stored, self.path)
        self.tensors = _canonical(self._stored, self.layout)
        self.text = self._text_spec()
        self.vision = self._vision_spec()
        self._check_shapes()

    # --- specs ---------------------------------------------------------------------------------
    def _text_config(self) -> dict:
        return self.config["text_config"] if self.layout == "hf" else self.config

    def _text_spec(self) -> TextSpec:
        cfg = self._text_config()
        model_type = cfg.get("model_type", "")
        family = TEXT_FAMILIES.get(model_type)
        if family is None:
            raise ConversionError(
                f"{self.path}: the language model type {model_type!r} is not supported "
                "(supported: Qwen2 and Llama-family such as Yi)"
            )
        has_qkv_bias = "text.model.layers.0.self_attn.q_proj.bias" in self.tensors
        if family == "qwen2" and not has_qkv_bias:
            raise ConversionError(f"{self.path}: a Qwen2 model must have q/k/v biases, and this one has none")
        if family == "llama" and has_qkv_bias:
            raise ConversionError(f"{self.path}: q/k/v biases in a Llama-family model are not supported")
        n_heads = cfg["num_attention_heads"]
        embed = self.tensors["text.model.embed_tokens.weight"]
        return TextSpec(
            family=family,
            hidden_size=cfg["hidden_size"],
            n_layers=cfg["num_hidden_layers"],
            n_heads=n_heads,
            n_kv_heads=cfg.get("num_key_value_heads") or n_heads,
            ffn_size=cfg["intermediate_size"],
            vocab_size=embed.shape[0],
            rope_theta=float(cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            context_length=int(self.config.get("tokenizer_model_max_length") or 4096),
            tie_embeddings="text.lm_head.weight" not in self.tensors,
        )

    def _vision_config(self) -> dict:
        if self.layout == "hf":
            return self.config.get("vision_config") or {}
        # The original layout keeps a copy of CLIP's config beside the model; its weights are in the
        # model checkpoint itself (those are the ones used).
        tower = self.config.get("mm_vision_tower") or ""
        candidate = (self.path / tower / "config.json") if tower.startswith(".") else None
        if candidate and candidate.is_file():
            cfg = json.loads(candidate.read_text())
            return cfg.get("vision_config", cfg)
        return {}

    def _vision_spec(self) -> VisionSpec:
        if self.layout == "original":
            checks = {
                "mm_projector_type": ("mlp2x_gelu",),
                "mm_vision_select_feature": ("patch",),
                "image_aspect_ratio": ("pad", None),
            }
            for key, allowed in checks.items():
                if self.config.get(key) not in allowed:
                    raise ConversionError(
                        f"{self.path}: {key}={self.config.get(key)!r} is not supported (expected {allowed[0]!r})"
                    )
            select_layer = self.config.get("mm_vision_select_layer", -2)
        else:
            if self.config.get("vision_feature_select_strategy", "default") != "default":
                raise ConversionError(
                    f"{self.path}: only the 'default' vision feature strategy (CLS dropped) is supported"
                )
            if self.config.get("projector_hidden_act", "gelu") != "gelu":
                raise ConversionError(
                    f"{self.path}: projector activation {self.config['projector_hidden_act']!r} is not supported"
                )
            select_layer = self.config.get("vision_feature_layer", -2)
        if not isinstance(select_layer, int):
            raise ConversionError(f"{self.path}: several vision feature layers ({select_layer}) are not supported")
        for name in ("projector.0.weight", "projector.0.bias", "projector.2.weight", "projector.2.bias"):
            if name not in self.tensors:
                raise ConversionError(
                    f"{self.path}: the projector tensor {name} is missing (expected an mlp2x_gelu projector)"
                )
        extra = sorted(n for n in self.tensors if n.startswith("projector.") and n.split(".")[1] not in ("0", "2"))
        if extra:
            raise ConversionError(f"{self.path}: unexpected projector tensors {extra} (only mlp2x_gelu is supported)")

        cfg = self._vision_config()
        patch = self.tensors["vision.embeddings.patch_embedding.weight"].shape
        n_positions = self.tensors["vision.embeddings.position_embedding.weight"].shape[0]
        hidden, patch_size = patch[0], patch[2]
        image_size = int(round((n_positions - 1) ** 0.5)) * patch_size
        n_layers = 1 + max(int(n.split(".")[3]) for n in self.tensors if n.startswith("vision.encoder.layers."))
        n_used = n_layers + 1 + select_layer if select_layer < 0 else select_layer
        if not 0 < n_used <= n_layers:
            raise ConversionError(
                f"{self.path}: vision feature layer {select_layer} is out of range for {n_layers} layers"
            )
        return VisionSpec(
            image_size=int(cfg.get("image_size", image_size)),
            patch_size=int(cfg.get("patch_size", patch_size)),
            hidden_size=hidden,
            n_layers=n_layers,
            n_layers_used=n_used,
            n_heads=int(cfg.get("num_attention_heads", hidden // 64)),  # CLIP uses 64-wide heads
            ffn_size=self.tensors["vision.encoder.layers.0.mlp.fc1.weight"].shape[0],
            layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-5)),
            projector_dim=self.tensors["projector.2.weight"].shape[0],
        )

    def _check_shapes(self) -> None:
        t, v = self.text, self.vision
        if v.projector_dim != t.hidden_size:
            raise ConversionError(
                f"{self.path}: the projector outputs width {v.projector_dim} but the language model's hidden size "
                f"is {t.hidden_size}; image embeddings would not fit the model"
            )
        if self.tensors["projector.0.weight"].shape[1] != v.hidden_size:
            raise ConversionError(
                f"{self.path}: the projector takes width {self.tensors['projector.0.weight'].shape[1]} "
                f"but the vision tower outputs {v.hidden_size}"
            )
        if v.image_size % v.patch_size:
            raise ConversionError(
                f"{self.path}: image size {v.image_size} is not a multiple of patch size {v.patch_size}"
            )
        missing = [
            f"text.model.layers.{i}.self_attn.q_proj.weight"
            for i in range(t.n_layers)
            if f"text.model.layers.{i}.self_attn.q_proj.weight" not in self.tensors
        ]
        if missing:
            raise ConversionError(f"{self.path}: language model layers are missing, e.g. {missing[0]}")

    # --- the family's interface (see conversion.families) ------------------------------------
    def write_text_gguf(self, path: Path, weight_type, on_bytes=None, name: str | None = None) -> None:
        from .text_gguf import write_text_gguf

        write_text_gguf(self, path, weight_type, on_bytes, name)

    def write_mmproj_gguf(self, path: Path, weight_type, on_bytes=None, name: str | None = None) -> None:
        from .mmproj_gguf import write_mmproj_gguf

        write_mmproj_gguf(self, path, weight_type, on_bytes, name)

    def manifest_fields(self) -> dict:
        v = self.vision
        return {"image_size": v.image_size, "image_tokens": v.n_image_tokens, "vision_layers_used": v.n_layers_used}

    # --- identity ------------------------------------------------------------------------------
    def identity(self) -> dict:
        return checkpoint_identity(self.path, self.layout, self.tensors)


def checkpoint_identity(path: Path, layout: str, tensors: dict[str, StoredTensor]) -> dict:
    """What identifies a source checkpoint: its config and shard index hashed, and the shard sizes."""
    digest = hashlib.sha256((path / "config.json").read_bytes())
    index = path / "model.safetensors.index.json"
    if index.is_file():
        digest.update(index.read_bytes())
    files = sorted({t.path for t in tensors.values()})
    return {
        "folder_name": path.name,
        "layout": layout,
        "config_sha256": digest.hexdigest(),
        "files": {p.name: p.stat().st_size for p in files},
    }


def _detect_layout(config: dict, stored: dict[str, StoredTensor], path: Path) -> str:
    names = stored.keys()
    original = "model.mm_projector.0.weight" in names
    hf = any(n.endswith("multi_modal_projector.linear_1.weight") for n in names)
    model_type = config.get("model_type", "")
    architectures = config.get("architectures") or []
    if original and model_type in ("llava_qwen2", "llava_llama", "llava"):
        return "original"
    if hf and model_type == "llava" and "text_config" in config:
        return "hf"
    if not original and not hf:
        raise ConversionError(
            f"{path}: no vision projector found (architecture {architectures or model_type!r}); "
            "this is not a LLaVA-style HuatuoGPT-Vision checkpoint"
        )
    raise ConversionError(
        f"{path}: config.json (model_type {model_type!r}, {architectures}) does not match the tensor names "
        f"({'original' if original else '-hf'} layout)"
    )


def _canonical(stored: dict[str, StoredTensor], layout: str) -> dict[str, StoredTensor]:
    tensors: dict[str, StoredTensor] = {}
    for name, tensor in stored.items():
        for prefix, canonical in _PREFIXES[layout]:
            if name.startswith(prefix):
                tensors[canonical + name[len(prefix) :]] = tensor
                break
        # anything else (e.g. rotary caches of old exports) is not part of the model
    tensors.pop("vision.embeddings.position_ids", None)
    return tensors


# Canonical name prefix -> the prefix a checkpoint of each layout stores it under.
STORED_PREFIXES = {
    "original": [
        ("projector.", "model.mm_projector."),
        ("vision.", "model.vision_tower.vision_tower.vision_model."),
        ("text.model.", "model."),
        ("text.lm_head.", "lm_head."),
    ],
    "hf": [  # as transformers 4.x saved the released -hf checkpoints
        ("projector.0.", "multi_modal_projector.linear_1."),
        ("projector.2.", "multi_modal_projector.linear_2."),
        ("vision.", "vision_tower.vision_model."),
        ("text.model.", "language_model.model."),
        ("text.lm_head.", "language_model.lm_head."),
    ],
}


def stored_name(canonical: str, layout: str) -> str:
    """The name a canonical tensor has in a checkpoint of this layout (the inverse of reading one)."""
    for prefix, stored in STORED_PREFIXES[layout]:
        if canonical.startswith(prefix):
            return stored + canonical[len(prefix) :]
    raise KeyError(canonical)
