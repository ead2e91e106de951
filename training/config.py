"""Training configuration: one YAML file per stage, read into typed sections.

Paths may use environment variables (``${HUATUO_DATA}/PubMedVision``); relative paths are taken from the
directory the command runs in. ``--set section.key=value`` overrides any entry (the value is read as YAML).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

STAGE_TRAINABLE = {1: ("projector",), 2: ("projector", "llm")}


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the file and the key."""


@dataclass
class DatasetSpec:
    json: str  # a JSON list (or JSON lines) of LLaVA/PubMedVision conversation records
    images: str | None = None  # the folder that the records' image paths are relative to
    name: str | None = None


@dataclass
class ModelSection:
    base_llm: str | None = None  # transformers folder of a Qwen2 or Llama-family (Yi) language model
    vision_tower: str | None = None  # transformers folder of CLIP ViT-L/14-336 (CLIPModel or CLIPVisionModel)
    projector: str | None = None  # optional mm_projector weights (.bin/.safetensors); default: new, random
    init_checkpoint: str | None = None  # a HuatuoGPT-Vision checkpoint (original or -hf layout) to continue from
    shapes: str | None = None  # named shapes for random weights (benchmarks only): tiny, qwen2-7b, yi-34b
    attn_implementation: str = "sdpa"  # sdpa, eager, flash_attention_2 or flex_attention
    vision_select_layer: int = -2


@dataclass
class DataSection:
    datasets: list[DatasetSpec] = field(default_factory=list)
    max_length: int = 4096  # tokens after image expansion
    packing: bool = True  # a micro batch is one row of concatenated samples, attention kept within each sample
    num_workers: int = 4
    max_images: int | None = None  # skip records with more images than this (None: keep all)


@dataclass
class TrainSection:
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    global_batch_size: int = 128  # samples per optimizer step, over all ranks
    micro_batch_size: int = 4  # samples per forward pass on one rank
    epochs: int = 1
    max_steps: int | None = None  # overrides epochs when set
    seed: int = 42


@dataclass
class SystemSection:
    device: str = "auto"  # auto (cuda when present), cuda or cpu
    precision: str = "bf16"  # bf16 (fp32 master weights, bf16 compute) or fp32
    gradient_checkpointing: bool = True
    cpu_offload: bool = False  # FSDP2 CPU offload of parameters, gradients and optimizer state
    reshard_after_forward: bool = True
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 2
    log_every_steps: int = 1
    tensorboard: bool = True  # used when the tensorboard package is installed
    export_at_end: bool = True  # write RUN_DIR/export (original HuatuoGPT-Vision layout) when training ends


@dataclass
class Config:
    stage: int
    run_dir: str
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    system: SystemSection = field(default_factory=SystemSection)
    source: str = "<dict>"  # the file it was read from, for messages

    @property
    def trainable(self) -> tuple[str, ...]:
        return STAGE_TRAINABLE[self.stage]

    def gradient_accumulation(self, world_size: int) -> int:
        """Micro batches per rank per optimizer step, derived from the global batch."""
        per_step = self.train.micro_batch_size * world_size
        if self.train.global_batch_size % per_step:
            raise ConfigError(
                f"{self.source}: global_batch_size {self.train.global_batch_size} is not a multiple of "
                f"micro_batch_size {self.train.micro_batch_size} x {world_size} ranks"
            )
        return self.train.global_batch_size // per_step

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("source")
        data["train"]["adam_betas"] = list(data["train"]["adam_betas"])
        return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    for item in overrides or []:
        _apply_override(raw, item, path)
    return config_from_dict(raw, str(path))


def config_from_dict(raw: dict, source: str = "<dict>") -> Config:
    raw = _expand(raw)
    config = _build(Config, {**raw, "source": source}, source, "")
    _validate(config)
    return config


def _apply_override(raw: dict, item: str, source: Path) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected section.key=value")
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: override {key}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(value)


def _expand(value):
    if isinstance(value, str):
        expanded = os.path.expandvars(value)
        if "${" in expanded:
            raise ConfigError(f"{value!r}: an environment variable it names is not set")
        return expanded
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def _build(cls, data, source: str, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the file'} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(names - {'source'}))})"
        )
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: {prefix}{f.name} is required")
            continue
        values[f.name] = _convert(hints[f.name], data[f.name], source, prefix + f.name)
    return cls(**values)


def _convert(hint, value, source: str, key: str):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, source, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, key + ".")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list")
        return [_convert(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{source}: {key} must be a list of {len(args)} numbers")
        return tuple(_convert(a, v, source, key) for a, v in zip(args, value, strict=True))
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if (hint is int and isinstance(value, bool)) or not isinstance(value, hint):
        raise ConfigError(f"{source}: {key} must be {hint.__name__}, not {value!r}")
    return value


def _validate(c: Config) -> None:
    s = c.source
    if c.stage not in STAGE_TRAINABLE:
        raise ConfigError(f"{s}: stage must be 1 (projector only) or 2 (projector and language model)")
    m = c.model
    if m.init_checkpoint and (m.base_llm or m.vision_tower):
        raise ConfigError(f"{s}: give either model.init_checkpoint or model.base_llm + model.vision_tower, not both")
    if not m.init_checkpoint and not m.shapes and not (m.base_llm and m.vision_tower):
        raise ConfigError(f"{s}: model.base_llm and model.vision_tower (or model.init_checkpoint) are required")
    if c.system.precision not in ("bf16", "fp32"):
        raise ConfigError(f"{s}: system.precision must be bf16 or fp32")
    if c.system.device not in ("auto", "cuda", "cpu"):
        raise ConfigError(f"{s}: system.device must be auto, cuda or cpu")
    t = c.train
    for key in ("global_batch_size", "micro_batch_size", "epochs"):
        if getattr(t, key) < 1:
            raise ConfigError(f"{s}: train.{key} must be at least 1")
    if t.max_steps is not None and t.max_steps < 1:
        raise ConfigError(f"{s}: train.max_steps must be at least 1")
    if not 0 <= t.warmup_ratio < 1:
        raise ConfigError(f"{s}: train.warmup_ratio must be in [0, 1)")
    if c.data.max_length < 64:
        raise ConfigError(f"{s}: data.max_length {c.data.max_length} is too small")
