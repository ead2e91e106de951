"""Training configuration: one YAML file per stage, read into typed sections (training/typed_config.py).

Paths may use environment variables (``${HUATUO_DATA}/PubMedVision``); relative paths are taken from the
directory the command runs in. ``--set section.key=value`` overrides any entry (the value is read as YAML).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .typed_config import ConfigError, apply_override, build, read_yaml, require

STAGE_TRAINABLE = {1: ("projector",), 2: ("projector", "llm")}


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

    def check(self) -> None:
        require(not (self.init_checkpoint and (self.base_llm or self.vision_tower)), "init_checkpoint",
                "cannot be given with base_llm or vision_tower: start from a checkpoint or from the two parts")
        require(bool(self.init_checkpoint or self.shapes or (self.base_llm and self.vision_tower)), "",
                "needs base_llm and vision_tower (or init_checkpoint)")


@dataclass
class DataSection:
    datasets: list[DatasetSpec] = field(default_factory=list)
    max_length: int = 4096  # tokens after image expansion
    packing: bool = True  # a micro batch is one row of concatenated samples, attention kept within each sample
    num_workers: int = 4
    max_images: int | None = None  # skip records with more images than this (None: keep all)

    def check(self) -> None:
        require(self.max_length >= 64, "max_length", f"must be at least 64, not {self.max_length}")


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

    def check(self) -> None:
        for key in ("global_batch_size", "micro_batch_size", "epochs"):
            require(getattr(self, key) >= 1, key, "must be at least 1")
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", "must be at least 1")
        require(0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)")


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

    def check(self) -> None:
        require(self.device in ("auto", "cuda", "cpu"), "device", "must be auto, cuda or cpu")
        require(self.precision in ("bf16", "fp32"), "precision", "must be bf16 or fp32")


@dataclass
class Config:
    stage: int = field(metadata={"help": "1: the projector only, 2: the projector and the language model"})
    run_dir: str = field(metadata={"help": "the folder for checkpoints, logs and the export"})
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    system: SystemSection = field(default_factory=SystemSection)
    source: str = "<dict>"  # the file it was read from, for messages

    def check(self) -> None:
        require(self.stage in STAGE_TRAINABLE, "stage",
                "must be 1 (projector only) or 2 (projector and language model)")

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
    raw = read_yaml(path)
    for item in overrides or []:
        apply_override(raw, item, path)
    return config_from_dict(raw, str(path))


def config_from_dict(raw: dict, source: str = "<dict>") -> Config:
    return build(Config, raw, source, given={"source": source})
