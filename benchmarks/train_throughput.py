"""Training throughput at real shapes with random weights: tokens/s per GPU, MFU and peak memory.

    python benchmarks/train_throughput.py --config training/configs/stage1_7b.yaml [--json]
    python benchmarks/train_throughput.py --config training/configs/stage2_7b.yaml [--json]
    torchrun --nproc-per-node 8 benchmarks/train_throughput.py --config training/configs/stage2_7b.yaml

Takes everything from the stage's configuration (stage, micro batch, gradient accumulation, precision,
gradient checkpointing, FSDP2 settings) except the weights: the model is built at `model.shapes`
(qwen2-7b = Qwen2-7B + CLIP ViT-L/14-336) with random weights, and fed packed micro batches of synthetic
samples (one image, --sample-tokens tokens, the last --answer-tokens learned). It runs the training code's
own step (forward, backward, clipping, AdamW) and times whole optimizer steps after --warmup.

Memory-saving options: gradient checkpointing and bf16 come from the config; FSDP2 CPU offload is turned
on when the sharded float32 weights, gradients and Adam state would not fit the GPU (--cpu-offload auto;
stage 2 of the 7B on one 80 GB GPU needs it), or forced with on/off.

MFU = model FLOPs (training/metrics.py: 6N per token when the language model trains, 4N when it is frozen,
plus attention, vision tower and projector) / time / the device's peak dense bf16 FLOP/s (H100, H200,
A100 known; CPU: n/a).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The benchmark reads no file the configuration names; the stage configs' path variables need a value.
for _variable in ("HUATUO_DATA", "HUATUO_MODELS", "HUATUO_RUNS", "HUATUO_TINY"):
    os.environ.setdefault(_variable, "/unused")


def synthetic_micro_batch(n_samples: int, sample_tokens: int, answer_tokens: int, spec, packing: bool, seed: int):
    import torch

    from training.data import collate
    from training.model import IGNORE_INDEX, IMAGE_TOKEN_INDEX

    generator = torch.Generator().manual_seed(seed)
    n_image = spec.n_image_tokens
    if sample_tokens < n_image + answer_tokens + 8:
        raise SystemExit(f"--sample-tokens must be at least {n_image + answer_tokens + 8} (one image + answer)")
    vocab = spec.text_config.vocab_size
    samples = []
    for _ in range(n_samples):
        text = torch.randint(0, vocab, (sample_tokens - n_image,), generator=generator)
        ids = torch.cat([text[:8], torch.full((n_image,), IMAGE_TOKEN_INDEX), text[8:]])
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[-answer_tokens:] = ids[-answer_tokens:]
        pixels = torch.randn((1, 3, spec.image_size, spec.image_size), generator=generator)
        samples.append({"input_ids": ids, "labels": labels, "pixel_values": pixels})
    return collate(samples, packing=packing, pad_id=0)


def needs_offload(spec, trainable: tuple[str, ...], world_size: int, device) -> bool:
    """Whether float32 weights + gradients + Adam moments (16 bytes per trainable parameter) and the bf16
    frozen weights, sharded over the ranks, exceed 80 % of the GPU's memory."""
    import torch

    if device.type != "cuda":
        return False
    from training.model import build_on_meta

    model = build_on_meta(spec, trainable, torch.bfloat16)
    trainable_n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen_n = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    per_gpu = (16 * trainable_n + 2 * frozen_n) / world_size
    return per_gpu > 0.8 * torch.cuda.get_device_properties(device).total_memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a training configuration (its model.shapes is used)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps first")
    parser.add_argument("--accumulation", type=int, help="micro batches per step (default: from the global batch)")
    parser.add_argument("--sample-tokens", type=int, default=1024, help="tokens per sample, image included")
    parser.add_argument("--answer-tokens", type=int, default=256, help="learned tokens per sample")
    parser.add_argument("--cpu-offload", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from training import distributed
    from training.config import load_config
    from training.metrics import FlopCounter, device_name, peak_flops, peak_memory_gb
    from training.model import spec_from_shapes
    from training.train import build_model, make_optimizer, train_step

    cfg = load_config(args.config, args.overrides)
    if not cfg.model.shapes:
        raise SystemExit(f"{args.config}: model.shapes is not set (tiny, qwen2-7b or yi-34b)")
    spec = spec_from_shapes(cfg.model.shapes, cfg.model.attn_implementation)
    env = distributed.setup(cfg.system.device)
    try:
        offload = {"on": True, "off": False}.get(args.cpu_offload)
        if offload is None:
            offload = cfg.system.cpu_offload or needs_offload(spec, cfg.trainable, env.world_size, env.device)
        cfg = replace(cfg, system=replace(cfg.system, cpu_offload=offload))
        accumulation = args.accumulation or cfg.gradient_accumulation(env.world_size)
        model = build_model(spec, cfg, env)
        optimizer, scheduler = make_optimizer(model, cfg.train, args.warmup + args.steps)
        micro = synthetic_micro_batch(cfg.train.micro_batch_size, args.sample_tokens, args.answer_tokens, spec,
                                      cfg.data.packing, seed=env.rank)
        micro_batches = [micro] * accumulation
        flops = FlopCounter(model, "llm" in cfg.trainable)
        for _ in range(args.warmup):
            train_step(model, optimizer, scheduler, micro_batches, env, cfg.train.max_grad_norm)
        if env.device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        targets = []
        for _ in range(args.steps):
            targets = train_step(model, optimizer, scheduler, micro_batches, env, cfg.train.max_grad_norm).targets
        if env.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        step_tokens = sum(micro["lengths"]) * accumulation
        step_flops = sum(flops.step_flops(micro["lengths"], micro["n_images"], n) for n in targets)
        peak = peak_flops(env.device)
        (peak_mem,) = distributed.all_reduce_sum([peak_memory_gb(env.device)], env.device)
        result = {
            "tokens_per_s": step_tokens * args.steps / seconds,  # per GPU: every rank does the same work
            "mfu": step_flops * args.steps / seconds / peak if peak else None,
            "peak_mem_gb": peak_mem / env.world_size,  # mean over ranks (they are alike)
            "device": device_name(env.device),
            "world_size": env.world_size,
            "stage": cfg.stage,
            "shapes": cfg.model.shapes,
            "precision": cfg.system.precision,
            "gradient_checkpointing": cfg.system.gradient_checkpointing,
            "cpu_offload": offload,
            "micro_batch": cfg.train.micro_batch_size,
            "accumulation": accumulation,
            "packing": cfg.data.packing,
            "sample_tokens": args.sample_tokens,
            "step_time_s": seconds / args.steps,
        }
    finally:
        distributed.teardown()
    if env.is_main:
        if args.json:
            print(json.dumps(result))
        else:
            mfu = f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a"
            print(f"{result['device']} x {result['world_size']}, stage {result['stage']}, {result['shapes']}, "
                  f"{result['precision']}, checkpointing {result['gradient_checkpointing']}, "
                  f"CPU offload {result['cpu_offload']}")
            print(f"micro batch {result['micro_batch']} x {result['sample_tokens']} tokens "
                  f"({'packed' if result['packing'] else 'padded'}), {result['accumulation']} per step, "
                  f"{result['step_time_s']:.2f} s per step")
            print(f"tokens/s per GPU  {result['tokens_per_s']:.1f}")
            print(f"MFU               {mfu}")
            print(f"peak memory       {result['peak_mem_gb']:.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
