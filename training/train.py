"""The training loop: one stage of the two-stage LLaVA recipe, sharded with FSDP2, resumable exactly.

The loss of an optimizer step is the mean over all label tokens of the global batch (every rank, every
micro batch), so it does not depend on how the batch is split over ranks, micro batches or packed rows.
"""

from __future__ import annotations

import math
import random
import signal
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import yaml

from . import checkpoint, distributed, export
from .config import Config, ConfigError, TrainSection
from .data import RecordStore, StepSampler, SupervisedDataset, collate, load_tokenizer
from .metrics import FlopCounter, MetricsLog, device_name, peak_flops, peak_memory_gb
from .model import IGNORE_INDEX, build_on_meta, materialize, resolve_spec

# Settings a resumed run must share with the run it continues, or it would not be the same run.
_RESUME_KEYS = [("stage",), ("data", "datasets"), ("data", "max_length"), ("data", "max_images"),
                ("train", "global_batch_size"), ("train", "seed"), ("train", "epochs"), ("train", "max_steps")]


@dataclass
class Outcome:
    status: str  # finished | paused (stop_after_steps) | interrupted (signal)
    step: int
    total_steps: int
    run_dir: Path
    export_dir: Path | None = None


def train(config: Config, stop_after_steps: int | None = None) -> Outcome:
    env = distributed.setup(config.system.device)
    try:
        outcome = _train(config, env, stop_after_steps)
    finally:
        distributed.teardown()
    # Exported by one process after the group is gone: no rank waits on it, whatever the model's size.
    if env.is_main and outcome.status == "finished" and config.system.export_at_end:
        outcome.export_dir = export.export_checkpoint(outcome.run_dir, outcome.run_dir / "export", overwrite=True)
    return outcome


def _train(cfg: Config, env: distributed.DistEnv, stop_after_steps: int | None) -> Outcome:
    run_dir = Path(cfg.run_dir)
    _seed_everything(cfg.train.seed + env.rank)
    spec = resolve_spec(cfg.model)
    if spec.tokenizer_dir is None:
        raise ConfigError(f"{cfg.source}: training needs real weights (model.shapes is for benchmarks only)")
    tokenizer = load_tokenizer(spec.tokenizer_dir, spec.family, spec.text_config.eos_token_id)
    store = RecordStore(cfg.data.datasets, cfg.data.max_images)
    dataset = SupervisedDataset(store, tokenizer, spec.n_image_tokens, spec.image_size, cfg.data.max_length)
    accumulation = cfg.gradient_accumulation(env.world_size)
    steps_per_epoch = len(store) // cfg.train.global_batch_size
    total_steps = cfg.train.max_steps or cfg.train.epochs * steps_per_epoch

    resume_from = checkpoint.latest(run_dir)
    if env.is_main:
        _prepare_run_dir(cfg, run_dir, resuming=resume_from is not None)
        if resume_from is None:
            export.record_model(spec, run_dir, cfg.data.max_length)
    torch.distributed.barrier()

    # On resume every weight comes from the checkpoint; the sources are not read.
    model = build_model(spec, cfg, env, fill=resume_from is None)
    t = cfg.train
    optimizer, scheduler = make_optimizer(model, t, total_steps)
    state = {"step": 0, "samples": 0, "tokens": 0}
    if resume_from is not None:
        state = checkpoint.load(resume_from, model, optimizer, scheduler, env.rank)
    start_step = state["step"]

    sampler = StepSampler(len(store), t.global_batch_size, t.micro_batch_size, env.world_size, env.rank, t.seed,
                          total_steps, start_step)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=cfg.data.num_workers, pin_memory=env.device.type == "cuda",
        collate_fn=partial(collate, packing=cfg.data.packing, pad_id=tokenizer.pad_id),
    )
    flops = FlopCounter(model, "llm" in cfg.trainable)
    peak = peak_flops(env.device)
    log = MetricsLog(run_dir, cfg.system.tensorboard) if env.is_main else None
    if env.is_main:
        print(f"stage {cfg.stage}: {len(store)} records ({store.skipped} skipped), {total_steps} steps of "
              f"{t.global_batch_size} samples, {env.world_size} x {device_name(env.device)}, "
              f"{accumulation} micro batches of {t.micro_batch_size} per rank per step"
              + (f", resuming at step {start_step}" if start_step else ""), flush=True)

    stop_requested = _StopFlag()
    from tqdm import tqdm

    bar = tqdm(total=total_steps, initial=start_step, disable=not env.is_main, unit="step", dynamic_ncols=True)
    status = "finished"
    batches = iter(loader)
    step = start_step
    try:
        while step < total_steps:
            began = time.perf_counter()
            micro_batches = [next(batches) for _ in range(accumulation)]
            result = train_step(model, optimizer, scheduler, micro_batches, env, t.max_grad_norm)
            tokens = sum(sum(mb["lengths"]) for mb in micro_batches)
            samples = sum(len(mb["lengths"]) for mb in micro_batches)
            step_flops = sum(flops.step_flops(mb["lengths"], mb["n_images"], n)
                             for mb, n in zip(micro_batches, result.targets, strict=True))
            tokens, samples, step_flops = distributed.all_reduce_sum([tokens, samples, step_flops], env.device)
            elapsed = time.perf_counter() - began
            step += 1
            state = {"step": step, "samples": state["samples"] + int(samples), "tokens": state["tokens"] + int(tokens)}
            record = {
                "step": step,
                "epoch": step / steps_per_epoch,
                "loss": result.loss,
                "lr": result.lr,
                "grad_norm": result.grad_norm,
                "tokens": int(tokens),
                "target_tokens": int(result.global_targets),
                "step_time_s": elapsed,
                "tokens_per_s": tokens / elapsed,
                "tokens_per_s_per_gpu": tokens / elapsed / env.world_size,
                "mfu": step_flops / elapsed / (env.world_size * peak) if peak else None,
                "peak_mem_gb": peak_memory_gb(env.device),
            }
            if log is not None and (step % cfg.system.log_every_steps == 0 or step == total_steps):
                log.write(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
            bar.update(1)

            paused = stop_after_steps is not None and step - start_step >= stop_after_steps and step < total_steps
            interrupted = distributed.any_rank(stop_requested.is_set, env.device)
            if step % cfg.system.checkpoint_every_steps == 0 or step == total_steps or paused or interrupted:
                checkpoint.save(run_dir, step, model, optimizer, scheduler, state, env.rank,
                                cfg.system.keep_checkpoints)
            if interrupted or paused:
                status = "interrupted" if interrupted else "paused"
                break
    finally:
        bar.close()
        stop_requested.restore()
        if log is not None:
            log.close()
    return Outcome(status, step, total_steps, run_dir)


def build_model(spec, cfg: Config, env: distributed.DistEnv, fill: bool = True):
    """The model on meta, checkpointed, sharded with FSDP2, then allocated and (with `fill`) loaded."""
    frozen_dtype = torch.bfloat16 if cfg.system.precision == "bf16" else torch.float32
    model = build_on_meta(spec, cfg.trainable, frozen_dtype)
    if cfg.system.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    distributed.shard(model, env, cfg.system.precision, cfg.system.cpu_offload, cfg.system.reshard_after_forward)
    offload = cfg.system.cpu_offload and env.device.type == "cuda"
    materialize(model, env.device, spec, cfg.train.seed, fill=fill, offload=offload)
    model.train()
    return model


def make_optimizer(model, t: TrainSection, total_steps: int):
    """AdamW over the trainable parameters; cosine schedule with linear warm-up (as LLaVA's trainer)."""
    from transformers import get_cosine_schedule_with_warmup

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=t.learning_rate, betas=t.adam_betas, eps=t.adam_eps,
                                  weight_decay=t.weight_decay)
    warmup = math.ceil(t.warmup_ratio * total_steps)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)


@dataclass
class StepResult:
    loss: float  # mean over the label tokens of the whole global batch
    global_targets: float
    targets: list[float]  # label tokens of each of this rank's micro batches
    grad_norm: float
    lr: float  # the rate this step's update used


def train_step(model, optimizer, scheduler, micro_batches: list[dict], env: distributed.DistEnv,
               max_grad_norm: float) -> StepResult:
    """One optimizer step over this rank's micro batches (gradient accumulation)."""
    targets = [float((mb["labels"][:, 1:] != IGNORE_INDEX).sum()) for mb in micro_batches]
    (global_targets,) = distributed.all_reduce_sum([sum(targets)], env.device)
    scale = env.world_size / max(global_targets, 1.0)  # x world size: FSDP averages gradients over ranks
    loss_sum = 0.0
    for mb in micro_batches:
        loss, _ = model(**_to_device(mb, env.device))
        (loss * scale).backward()
        loss_sum += float(loss.detach())
    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm if max_grad_norm > 0 else math.inf)
    grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    (loss_total,) = distributed.all_reduce_sum([loss_sum], env.device)
    return StepResult(loss_total / max(global_targets, 1.0), global_targets, targets, float(grad_norm), lr)


def _to_device(batch: dict, device: torch.device) -> dict:
    keys = ("input_ids", "labels", "position_ids", "attention_mask", "pixel_values")
    return {k: batch[k].to(device, non_blocking=True) if batch[k] is not None else None for k in keys}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _prepare_run_dir(cfg: Config, run_dir: Path, resuming: bool) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.yaml"
    current = cfg.to_dict()
    if resuming and saved.is_file():
        before = yaml.safe_load(saved.read_text())
        for path in _RESUME_KEYS:
            old, new = before, current
            for key in path:
                old, new = (old or {}).get(key), (new or {}).get(key)
            if old != new:
                raise ConfigError(
                    f"{cfg.source}: {'.'.join(path)} differs from the run in {run_dir} ({old!r} -> {new!r}); "
                    "resuming would not continue the same run (use a new run_dir)"
                )
        return
    saved.write_text(yaml.safe_dump(current, sort_keys=False, allow_unicode=True))


class _StopFlag:
    """SIGINT/SIGTERM ask for a checkpoint and a clean stop at the end of the step; a second one kills."""

    def __init__(self) -> None:
        self.is_set = False
        self._previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass

    def _handle(self, signum, frame) -> None:
        self.is_set = True
        self.restore()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
