"""Will a model pair run here? Memory it needs (weights, KV cache, compute buffers) against what the machine
has, the CPU features the llama.cpp build requires, and an expected decode speed from measured memory
bandwidth -> "fits" / "slow" / "won't fit", each with its reason. Runs without loading llama.cpp."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field

import numpy as np
import psutil

from .cpu_features import missing_features
from .store.gguf_check import PairInfo

COMPUTE_OVERHEAD_BYTES = 400 * 1024**2  # llama.cpp compute buffers + the vision encoder's, measured order
SLOW_TOKENS_PER_S = 3.0  # below this an answer of a few hundred tokens takes minutes


@dataclass
class Fit:
    verdict: str  # "fits" | "slow" | "won't fit"
    reasons: list[str] = field(default_factory=list)
    ram_needed_bytes: int = 0
    ram_available_bytes: int = 0
    expected_tokens_per_s: float | None = None


def kv_cache_bytes(pair: PairInfo, n_ctx: int, bytes_per_value: int = 2) -> int:
    return 2 * pair.n_layers * n_ctx * pair.n_kv_heads * pair.head_dim * bytes_per_value


def memory_bandwidth_gb_s(size_mb: int = 256, repeats: int = 5) -> float:
    """Measured copy bandwidth (read + write) in GB/s: the ceiling of token generation speed."""
    src = np.ones(size_mb * 1024 * 1024 // 8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def gpu_free_bytes() -> int | None:
    """Free memory of the first NVIDIA GPU, from nvidia-smi (None when there is none to ask)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return int(out.split()[0]) * 1024**2
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def assess(
    pair: PairInfo, n_ctx: int | None = None, bandwidth_gb_s: float | None = None, gpu_layers: int = 0,
) -> Fit:
    """gpu_layers: layers to offload (whether the build can is told by the engine when it loads)."""
    n_ctx = n_ctx or pair.context_length
    weights = pair.text_bytes + pair.mmproj_bytes
    needed = weights + kv_cache_bytes(pair, n_ctx) + COMPUTE_OVERHEAD_BYTES
    memory = psutil.virtual_memory()
    fit = Fit("fits", ram_needed_bytes=needed, ram_available_bytes=memory.available)
    gib = 1024**3
    missing = missing_features()
    if missing:
        fit.verdict = "won't fit"
        fit.reasons.append(f"this CPU lacks {', '.join(missing)}, which the llama.cpp build requires")
    if needed > memory.total:
        fit.verdict = "won't fit"
        fit.reasons.append(f"needs {needed / gib:.1f} GiB of memory; this machine has {memory.total / gib:.1f} GiB")
    elif needed > memory.available:
        fit.verdict = "slow" if fit.verdict == "fits" else fit.verdict
        fit.reasons.append(f"needs {needed / gib:.1f} GiB but only {memory.available / gib:.1f} GiB are free: "
                           f"close other programs, or the system will swap")
    if gpu_layers:
        share = min(gpu_layers, pair.n_layers) / pair.n_layers
        vram_needed = int(share * (pair.text_bytes + kv_cache_bytes(pair, n_ctx))) + COMPUTE_OVERHEAD_BYTES
        vram_free = gpu_free_bytes()
        if vram_free is None:
            fit.reasons.append("no NVIDIA GPU found to offload to; the model will run on the CPU")
        elif vram_needed > vram_free:
            fit.reasons.append(f"offloading {gpu_layers} layers needs {vram_needed / gib:.1f} GiB of GPU memory, "
                               f"{vram_free / gib:.1f} GiB are free: offload fewer layers")
    bandwidth = bandwidth_gb_s if bandwidth_gb_s is not None else memory_bandwidth_gb_s()
    # Each generated token reads every weight once; the copy benchmark's figure is an upper bound.
    fit.expected_tokens_per_s = bandwidth * 1e9 / pair.text_bytes
    if fit.verdict == "fits" and fit.expected_tokens_per_s < SLOW_TOKENS_PER_S:
        fit.verdict = "slow"
        fit.reasons.append(f"about {fit.expected_tokens_per_s:.1f} tokens/s at most on this machine's memory "
                           f"bandwidth ({bandwidth:.0f} GB/s)")
    if fit.verdict == "fits":
        fit.reasons.append(f"needs {needed / gib:.1f} GiB of {memory.available / gib:.1f} GiB free; up to "
                           f"{fit.expected_tokens_per_s:.0f} tokens/s")
    return fit


def physical_cores() -> int:
    """Threads for llama.cpp: physical cores (hyper-threads slow token generation down)."""
    try:
        siblings = set()
        for cpu in os.listdir("/sys/devices/system/cpu"):
            path = f"/sys/devices/system/cpu/{cpu}/topology/thread_siblings_list"
            if cpu.startswith("cpu") and os.path.exists(path):
                with open(path) as f:
                    siblings.add(f.read().strip())
        if siblings:
            return len(siblings)
    except OSError:
        pass
    return max(1, (os.cpu_count() or 2) // 2)
