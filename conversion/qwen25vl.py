"""A Qwen2.5-VL checkpoint (HuatuoGPT-Vision-7B-Qwen2.5VL) seen through canonical tensor names.

Key layouts (detected from the tensor names): ``flat`` as transformers 4 saved it (``visual.*``, ``model.*``,
``lm_head.*``) and ``nested`` as transformers 5 saves it (``model.visual.*``, ``model.language_model.*``).
Canonical names: ``text.<Qwen2 name>`` (``text.model.layers.0.self_attn.q_proj.weight``, ``text.lm_head.weight``)
and ``vision.<name inside visual>`` (``vision.blocks.0.attn.qkv.weight``, ``vision.merger.mlp.0.weight``).

The released config.json may leave vision fields out (the 7B lists only a few); transformers then fills them
from its defaults, so the same defaults are known here, without torch. Sizes are taken from the tensors
themselves and must agree with the config where it states them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from inference.imageprep import CLIP_MEAN, CLIP_STD

from .checkpoint import TextSpec, checkpoint_identity
from .errors import ConversionError
from .safetensors_reader import StoredTensor, read_checkpoint_tensors

FAMILY = "qwen2.5-vl"
TEXT_ARCHITECTURE = "qwen2vl"  # llama.cpp's M-RoPE Qwen2 graph
MODEL_TYPE = "qwen2_5_vl"
ARCHITECTURE = "Qwen2_5_VLForConditionalGeneration"

# transformers' Qwen2_5_VLVisionConfig defaults (what a config.json that leaves a field out means).
VISION_DEFAULTS = {
    "depth": 32, "hidden_act": "silu", "intermediate_size": 3420, "num_heads": 16, "in_channels": 3,
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
    "out_hidden_size": 3584, "fullatt_block_indexes": [7, 15, 23, 31],
}
# Qwen2VLImageProcessor's class defaults, for a release without preprocessor_config.json.
DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS = 56 * 56, 28 * 28 * 1280
VISION_RMS_EPS = 1e-6  # hard-coded in transformers' vision blocks and merger

# What llama.cpp 0.3.36's qwen2.5vl_merger graph hard-codes: other values would run, but compute something else.
LLAMA_CPP_MERGE_SIZE, LLAMA_CPP_WINDOW_SIZE, LLAMA_CPP_TEMPORAL_PATCH = 2, 112, 2

_LAYOUT_PREFIXES = {
    "flat": [("visual.", "vision."), ("model.", "text.model."), ("lm_head.", "text.lm_head.")],
    "nested": [("model.visual.", "vision."), ("model.language_model.", "text.model."),
               ("lm_head.", "text.lm_head.")],
}


_SIZED = ["text.model.embed_tokens.weight", "vision.patch_embed.proj.weight", "vision.blocks.0.mlp.gate_proj.weight",
          "vision.merger.mlp.0.weight", "vision.merger.mlp.2.weight"]


@dataclass(frozen=True)
class Qwen25VLVisionSpec:
    hidden_size: int
    depth: int
    n_heads: int
    ffn_size: int
    patch_size: int
    temporal_patch_size: int
    merge_size: int
    window_size: int
    fullatt_block_indexes: tuple[int, ...]
    out_hidden_size: int
    layer_norm_eps: float
    min_pixels: int
    max_pixels: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]

    @property
    def n_wa_pattern(self) -> int:
        """llama.cpp's window-attention pattern: layer il has full attention when (il + 1) % n == 0."""
        return self.fullatt_block_indexes[0] + 1

    @property
    def factor(self) -> int:
        """An image's sides are multiples of this (one merged token covers factor x factor pixels)."""
        return self.patch_size * self.merge_size

    @property
    def max_image_tokens(self) -> int:
        return self.max_pixels // self.factor**2


def claims(config: dict) -> bool:
    return config.get("model_type") == MODEL_TYPE or ARCHITECTURE in (config.get("architectures") or [])


class Qwen25VLCheckpoint:
    """Config, specs and lazily read tensors of one Qwen2.5-VL checkpoint folder."""

    FAMILY = FAMILY

    def __init__(self, path: str | Path):
        self.path = Path(path)
        config_path = self.path / "config.json"
        if not config_path.is_file():
            raise ConversionError(f"{self.path}: no config.json, so this is not a model checkpoint folder")
        self.config = json.loads(config_path.read_text())
        if not claims(self.config):
            raise ConversionError(f"{self.path}: config.json does not describe a Qwen2.5-VL model")
        stored = read_checkpoint_tensors(self.path)
        self.layout = _detect_layout(stored, self.path)
        self.tensors = _canonical(stored, self.layout)
        # The tensors the sizes are read from, named when missing (the rest are checked once sizes are known).
        missing = [n for n in _SIZED if n not in self.tensors]
        if missing:
            raise ConversionError(f"{self.path}: the tensor {missing[0]} is missing")
        self.text = self._text_spec()
        self.mrope_section = self._mrope_section()
        self.vision = self._vision_spec()
        self._check()
        self.chat_template = self._chat_template()

    # --- text ----------------------------------------------------------------------------------
    def _text_config(self) -> dict:
        return self.config.get("text_config") or self.config  # transformers 5 nests it, 4 kept it flat

    def _text_spec(self) -> TextSpec:
        cfg = self._text_config()
        rope = cfg.get("rope_parameters") or {}
        n_heads = cfg["num_attention_heads"]
        return TextSpec(
            family=TEXT_ARCHITECTURE,
            hidden_size=cfg["hidden_size"],
            n_layers=cfg["num_hidden_layers"],
            n_heads=n_heads,
            n_kv_heads=cfg.get("num_key_value_heads") or n_heads,
            ffn_size=cfg["intermediate_size"],
            vocab_size=self.tensors["text.model.embed_tokens.weight"].shape[0],
            rope_theta=float(cfg.get("rope_theta") or rope.get("rope_theta") or self.config.get("rope_theta")
                             or 1e6),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),  # transformers 4's default; releases state it
            context_length=int(cfg.get("max_position_embeddings") or 32768),
            tie_embeddings="text.lm_head.weight" not in self.tensors,
        )

    def _mrope_section(self) -> tuple[int, int, int, int]:
        cfg = self._text_config()
        for holder in (cfg.get("rope_parameters"), cfg.get("rope_scaling"), self.config.get("rope_scaling")):
            if holder and holder.get("mrope_section"):
                section = [int(n) for n in holder["mrope_section"]]
                break
        else:
            raise ConversionError(f"{self.path}: config.json gives no M-RoPE sections (rope_scaling.mrope_section)")
        if len(section) > 4 or 2 * sum(section) != self.text.head_dim:
            raise ConversionError(
                f"{self.path}: the M-RoPE sections {section} do not cover the head size {self.text.head_dim} "
                "(twice their sum must equal it)"
            )
        return tuple(section + [0] * (4 - len(section)))

    def eos_token_id(self) -> int | None:
        eos = self._text_config().get("eos_token_id", self.config.get("eos_token_id"))
        return eos[0] if isinstance(eos, list) else eos

    # --- vision --------------------------------------------------------------------------------
    def _vision_spec(self) -> Qwen25VLVisionSpec:
        given = self.config.get("vision_config")
        if not isinstance(given, dict):
            raise ConversionError(f"{self.path}: config.json has no vision_config, so the vision tower is unknown")
        cfg = {**VISION_DEFAULTS, **given}
        t = self.tensors
        patch = t["vision.patch_embed.proj.weight"]
        if len(patch.shape) != 5:
            raise ConversionError(f"{self.path}: the patch embedding has shape {patch.shape}, expected a Conv3d kernel")
        hidden, _, temporal, patch_size, _ = patch.shape
        depth = 1 + max((int(n.split(".")[2]) for n in t if n.startswith("vision.blocks.")), default=-1)
        merger_in = t["vision.merger.mlp.0.weight"].shape[1]
        merge = cfg.get("spatial_merge_size")
        from_tensors = {
            "hidden_size": hidden, "depth": depth, "patch_size": patch_size, "temporal_patch_size": temporal,
            "intermediate_size": t["vision.blocks.0.mlp.gate_proj.weight"].shape[0],
            "out_hidden_size": t["vision.merger.mlp.2.weight"].shape[0],
        }
        for key, actual in from_tensors.items():
            if key in given and int(given[key]) != actual:
                raise ConversionError(f"{self.path}: vision_config.{key} is {given[key]} but the tensors say {actual}")
        if merger_in != hidden * merge**2:
            raise ConversionError(
                f"{self.path}: the merger takes width {merger_in}, not {hidden} x {merge}^2 = {hidden * merge**2}"
            )
        processor = self._preprocessor_config()
        size = processor.get("size") or {}
        return Qwen25VLVisionSpec(
            hidden_size=hidden, depth=depth, n_heads=int(cfg.get("num_heads") or cfg.get("num_attention_heads")),
            ffn_size=from_tensors["intermediate_size"], patch_size=patch_size, temporal_patch_size=temporal,
            merge_size=int(merge), window_size=int(cfg["window_size"]),
            fullatt_block_indexes=tuple(int(i) for i in cfg["fullatt_block_indexes"]),
            out_hidden_size=from_tensors["out_hidden_size"], layer_norm_eps=VISION_RMS_EPS,
            min_pixels=int(processor.get("min_pixels") or size.get("shortest_edge") or DEFAULT_MIN_PIXELS),
            max_pixels=int(processor.get("max_pixels") or size.get("longest_edge") or DEFAULT_MAX_PIXELS),
            image_mean=tuple(processor.get("image_mean") or CLIP_MEAN),
            image_std=tuple(processor.get("image_std") or CLIP_STD),
        )

    def _preprocessor_config(self) -> dict:
        path = self.path / "preprocessor_config.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def _check(self) -> None:
        """Refuse what llama.cpp cannot run as transformers does, with the reason."""
        t, v, where = self.text, self.vision, self.path
        act = {**VISION_DEFAULTS, **self.config["vision_config"]}["hidden_act"]
        problems = []
        if act != "silu":
            problems.append(f"the vision MLP uses {act!r}; llama.cpp runs only 'silu' for this projector")
        if v.merge_size != LLAMA_CPP_MERGE_SIZE:
            problems.append(f"spatial merge size {v.merge_size}: llama.cpp hard-codes {LLAMA_CPP_MERGE_SIZE}")
        if v.window_size != LLAMA_CPP_WINDOW_SIZE:
            problems.append(f"attention window {v.window_size} px: llama.cpp hard-codes {LLAMA_CPP_WINDOW_SIZE}")
        if v.temporal_patch_size != LLAMA_CPP_TEMPORAL_PATCH:
            problems.append(f"temporal patch size {v.temporal_patch_size}: llama.cpp splits a kernel of exactly 2")
        if v.hidden_size % v.n_heads or (v.hidden_size // v.n_heads) % 4:
            problems.append(f"vision width {v.hidden_size} over {v.n_heads} heads: the head size must be a "
                            "multiple of 4 for llama.cpp's 2-D rotary embedding")
        if v.out_hidden_size != t.hidden_size:
            problems.append(f"the merger outputs width {v.out_hidden_size} but the language model's hidden size "
                            f"is {t.hidden_size}")
        full = v.fullatt_block_indexes
        pattern = full[0] + 1 if full else 0
        evenly = [il for il in range(v.depth) if pattern and (il + 1) % pattern == 0]
        if not full or list(full) != evenly:
            problems.append(f"full-attention layers {list(full)} of {v.depth} are not evenly spaced "
                            "(llama.cpp gives full attention to every n-th layer, n-1, 2n-1, ...)")
        if not t.tie_embeddings and self.tensors["text.lm_head.weight"].shape[0] != t.vocab_size:
            problems.append("lm_head and the token embedding have different vocabulary sizes")
        if "text.model.layers.0.self_attn.q_proj.bias" not in self.tensors:
            problems.append("the language model has no q/k/v biases (Qwen2 has them)")
        if problems:
            raise ConversionError(f"{where}: this Qwen2.5-VL checkpoint cannot be converted: " + "; ".join(problems))
        missing = [name for name in self._required() if name not in self.tensors]
        if missing:
            raise ConversionError(f"{where}: {len(missing)} tensors are missing, e.g. {missing[0]}")

    def _required(self) -> list[str]:
        names = ["text.model.embed_tokens.weight", "text.model.norm.weight", "vision.merger.ln_q.weight"]
        names += [f"vision.merger.mlp.{i}.{k}" for i in (0, 2) for k in ("weight", "bias")]
        for i in range(self.text.n_layers):
            p = f"text.model.layers.{i}."
            names += [p + f"self_attn.{x}_proj.{k}" for x in "qkv" for k in ("weight", "bias")]
            names += [p + n + ".weight" for n in ("self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
                                                  "input_layernorm", "post_attention_layernorm")]
        for i in range(self.vision.depth):
            p = f"vision.blocks.{i}."
            names += [p + "norm1.weight", p + "norm2.weight"]
            names += [p + n + "." + k for n in ("attn.qkv", "attn.proj", "mlp.gate_proj", "mlp.up_proj",
                                                "mlp.down_proj") for k in ("weight", "bias")]
        return names

    def _chat_template(self) -> str:
        """The release's own chat template: chat_template.jinja, chat_template.json or tokenizer_config.json."""
        jinja = self.path / "chat_template.jinja"
        if jinja.is_file():
            return jinja.read_text(encoding="utf-8")
        for name in ("chat_template.json", "tokenizer_config.json"):
            path = self.path / name
            if path.is_file():
                template = json.loads(path.read_text(encoding="utf-8")).get("chat_template")
                if isinstance(template, str) and template:
                    return template
        raise ConversionError(f"{self.path}: the release has no chat template (chat_template.json or "
                              "tokenizer_config.json), so its prompt format is unknown")

    # --- the family's interface ----------------------------------------------------------------
    def write_text_gguf(self, path: Path, weight_type, on_bytes=None, name: str | None = None) -> None:
        from .qwen25vl_gguf import write_text_gguf

        write_text_gguf(self, path, weight_type, on_bytes, name)

    def write_mmproj_gguf(self, path: Path, weight_type, on_bytes=None, name: str | None = None) -> None:
        from .qwen25vl_gguf import write_mmproj_gguf

        write_mmproj_gguf(self, path, weight_type, on_bytes, name)

    def manifest_fields(self) -> dict:
        from .qwen25vl_gguf import MMPROJ_IMAGE_SIZE

        v = self.vision
        return {
            "image_size": MMPROJ_IMAGE_SIZE, "image_tokens": v.max_image_tokens, "vision_layers_used": v.depth,
            "image_min_pixels": v.min_pixels, "image_max_pixels": v.max_pixels,
        }

    def identity(self) -> dict:
        return checkpoint_identity(self.path, self.layout, self.tensors)


def _detect_layout(stored: dict[str, StoredTensor], path: Path) -> str:
    names = stored.keys()
    nested = any(n.startswith("model.visual.") for n in names)
    flat = any(n.startswith("visual.") for n in names)
    if nested and flat:
        raise ConversionError(f"{path}: the vision tensors are stored under both visual.* and model.visual.*")
    if not nested and not flat:
        raise ConversionError(
            f"{path}: config.json describes Qwen2.5-VL but no vision tensors (visual.* or model.visual.*) were found"
        )
    return "nested" if nested else "flat"


def _canonical(stored: dict[str, StoredTensor], layout: str) -> dict[str, StoredTensor]:
    tensors: dict[str, StoredTensor] = {}
    for name, tensor in stored.items():
        for prefix, canonical in _LAYOUT_PREFIXES[layout]:
            if name.startswith(prefix):
                tensors[canonical + name[len(prefix):]] = tensor
                break
    return tensors

