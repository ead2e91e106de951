"""Sharded training checkpoints with torch.distributed.checkpoint (DCP).

``RUN_DIR/checkpoints/step-NNNNNNNN/`` holds the model and optimizer shards (DCP files), the LR scheduler,
the trainer state (step, samples and tokens seen) and each rank's random generators. A checkpoint is
written under ``.partial`` and renamed when every rank has finished, then ``latest`` is pointed at it, so
an interrupted save never replaces a good checkpoint. Each rank writes its own shards; across nodes
RUN_DIR must be on a shared file system.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

CHECKPOINTS = "checkpoints"
LATEST = "latest"
MODEL_PREFIX = "model."  # DCP flattens {"model": {...}} into "model.<parameter name>"


def step_dir(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / f"step-{step:08d}"


def latest(run_dir: Path) -> Path | None:
    pointer = run_dir / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    folder = run_dir / CHECKPOINTS / pointer.read_text().strip()
    if not (folder / "trainer_state.json").is_file():
        raise FileNotFoundError(f"{pointer} names {folder.name}, which is missing or incomplete")
    return folder


def save(run_dir: Path, step: int, model, optimizer, scheduler, trainer_state: dict, rank: int, keep: int) -> Path:
    final = step_dir(run_dir, step)
    partial = final.with_name(final.name + ".partial")
    if rank == 0:
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "rng").mkdir(parents=True)
    dist.barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=partial)
    torch.save(_rng_state(), partial / "rng" / f"rank-{rank:05d}.pt")
    dist.barrier()
    if rank == 0:
        torch.save(scheduler.state_dict(), partial / "scheduler.pt")
        (partial / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        pointer = run_dir / CHECKPOINTS / LATEST
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(final.name)
        tmp.replace(pointer)
        _prune(run_dir, keep, final)
    dist.barrier()
    return final


def load(folder: Path, model, optimizer, scheduler, rank: int) -> dict:
    """Restore model, optimizer, scheduler and this rank's generators; return the trainer state."""
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.load({"model": model_state, "optim": optim_state}, checkpoint_id=folder)
    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optim_state)
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=False))
    rng_file = folder / "rng" / f"rank-{rank:05d}.pt"
    if rng_file.is_file():  # absent when resuming on more ranks than were saved
        _set_rng_state(torch.load(rng_file, weights_only=False))
    return json.loads((folder / "trainer_state.json").read_text())


def model_tensor_shapes(folder: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Parameter name -> (shape, dtype) of the model tensors in a checkpoint (no process group needed)."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    metadata = FileSystemReader(str(folder)).read_metadata()
    shapes = {}
    for key, meta in metadata.state_dict_metadata.items():
        if key.startswith(MODEL_PREFIX) and isinstance(meta, TensorStorageMetadata):
            shapes[key[len(MODEL_PREFIX) :]] = (tuple(meta.size), meta.properties.dtype)
    return shapes


def read_model_tensors(folder: Path, names: list[str],
                       batch_bytes: int = 2 << 30) -> Iterator[tuple[str, torch.Tensor]]:
    """Whole (unsharded) model tensors, read a batch at a time so memory stays bounded."""
    shapes = model_tensor_shapes(folder)
    batch: dict[str, torch.Tensor] = {}
    size = 0
    for number, name in enumerate(names):
        shape, dtype = shapes[name]
        batch[name] = torch.empty(shape, dtype=dtype)
        size += batch[name].nbytes
        last = number == len(names) - 1
        if last or size + _nbytes(shapes[names[number + 1]]) > batch_bytes:
            with warnings.catch_warnings():  # "no process group: loading in one process" is the intent
                warnings.simplefilter("ignore", UserWarning)
                dcp.load({"model": batch}, checkpoint_id=folder, no_dist=True)
            yield from batch.items()
            batch, size = {}, 0


def _nbytes(shape_dtype: tuple[tuple[int, ...], torch.dtype]) -> int:
    shape, dtype = shape_dtype
    return math.prod(shape) * dtype.itemsize


def _prune(run_dir: Path, keep: int, current: Path) -> None:
    finished = sorted(p for p in (run_dir / CHECKPOINTS).glob("step-*") if p.is_dir() and p.suffix != ".partial")
    for old in finished[: max(0, len(finished) - max(keep, 1))]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
