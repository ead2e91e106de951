"""Throughput figures: model FLOPs per step, MFU against the device's peak, peak memory; the JSONL log.

Model FLOPs (the PaLM convention, recomputation for gradient checkpointing not counted):
- language model, per token: 2N forward + 2N backward to the activations (always: the projector below it
  trains) + 2N for the weight gradients when the language model trains, i.e. 6N in stage 2 and 4N in
  stage 1; N = its decoder parameters (input embedding excluded). The output layer counts the same way,
  but only on the label tokens: logits are formed nowhere else. Attention adds 12 * layers * width * s per
  token of a sample of s tokens (forward and backward of QK^T and AV).
- vision tower (frozen, forward only): 2 * its parameters per patch token, plus attention.
- projector: 6 * its parameters per image token.
"""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

# Dense bf16 tensor-core peaks (FLOP/s), from the vendors' data sheets.
PEAK_BF16_FLOPS = {
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,  # SXM
    "H200": 989e12,
    "H800": 989e12,
    "A100": 312e12,
    "A800": 312e12,
}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def peak_flops(device: torch.device) -> float | None:
    """The device's peak dense bf16 FLOP/s, or None where it is not known (CPU: MFU is reported as n/a)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if all(part in name for part in key.split()):
            return PEAK_BF16_FLOPS[key]
    return None


class FlopCounter:
    def __init__(self, model, llm_trains: bool):
        text = model.text
        self.n_output = text.get_output_embeddings().weight.numel()
        self.n_llm = sum(p.numel() for p in text.model.parameters()) - text.get_input_embeddings().weight.numel()
        self.llm_factor = 6 if llm_trains else 4
        cfg = text.config
        self.attention_width = cfg.num_attention_heads * (getattr(cfg, "head_dim", None)
                                                          or cfg.hidden_size // cfg.num_attention_heads)
        self.n_layers = cfg.num_hidden_layers
        vision = model.vision
        vcfg = vision.config
        used = vision.encoder.layers[: vision.n_used]  # the layers after the selected one are never run
        self.n_vision = sum(p.numel() for p in used.parameters()) + vision.embeddings.patch_embedding.weight.numel()
        self.vision_tokens = (vcfg.image_size // vcfg.patch_size) ** 2 + 1
        self.vision_attention = 4 * vision.n_used * vcfg.hidden_size * self.vision_tokens ** 2
        self.n_projector = sum(p.numel() for p in model.projector.parameters())

    def step_flops(self, lengths: Sequence[int], n_images: int, n_targets: float) -> float:
        """Model FLOPs of one micro batch: its samples' lengths, images and label tokens."""
        tokens = sum(lengths)
        llm = self.llm_factor * (self.n_llm * tokens + self.n_output * n_targets)
        attention = 12 * self.n_layers * self.attention_width * sum(n * n for n in lengths)
        vision = n_images * (2 * self.n_vision * self.vision_tokens + self.vision_attention)
        projector = 6 * self.n_projector * n_images * (self.vision_tokens - 1)
        return float(llm + attention + vision + projector)


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    # ru_maxrss: kilobytes on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1e9 if sys.platform == "darwin" else 1e6)


class MetricsLog:
    """One JSON object per logged step in RUN_DIR/metrics.jsonl, mirrored to tensorboard when installed."""

    def __init__(self, run_dir: Path, tensorboard: bool):
        self.path = run_dir / "metrics.jsonl"
        self._file = self.path.open("a", encoding="utf-8")
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                pass
            else:
                self._writer = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self._writer.add_scalar(f"train/{key}", value, record["step"])

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
