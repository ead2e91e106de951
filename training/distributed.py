"""Process group, device and FSDP2 sharding.

Runs under `torchrun` (one process per GPU, any number of nodes) or as a single process (a group of one).
CUDA uses NCCL, with gloo beside it for the few CPU-side collectives (CPU offload, gradient norms of
offloaded shards); CPU runs use gloo alone.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard


@dataclass
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    mesh: DeviceMesh

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_choice: str = "auto", timeout_minutes: int = 60) -> DistEnv:
    if "RANK" not in os.environ:  # a single process: a group of one
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise RuntimeError("system.device is cuda but no CUDA device is available")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "cpu:gloo,cuda:nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        # Long timeout: saving a sharded checkpoint of a 34B model can keep ranks apart for minutes.
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_minutes))
    mesh = init_device_mesh(device.type, (world,))
    return DistEnv(rank, world, local_rank, device, mesh)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shard(model: nn.Module, env: DistEnv, precision: str, cpu_offload: bool, reshard_after_forward: bool) -> None:
    """FSDP2: one group per decoder layer, one for the vision tower, and the root (embeddings, final norm,
    output layer, projector). bf16 compute with float32 gradient reduction."""
    if precision == "bf16":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    else:
        policy = MixedPrecisionPolicy()
    offload = CPUOffloadPolicy() if cpu_offload and env.device.type == "cuda" else OffloadPolicy()
    common = {"mesh": env.mesh, "mp_policy": policy, "offload_policy": offload}
    for layer in model.text.model.layers:
        fully_shard(layer, reshard_after_forward=reshard_after_forward, **common)
    fully_shard(model.vision, **common)
    fully_shard(model, **common)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def any_rank(flag: bool, device: torch.device) -> bool:
    tensor = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())
