"""Several processes, one run: torchrun's environment, DistributedDataParallel helpers.

Under `torchrun --nproc_per_node N` every process trains on its shard of the data; gradients
are averaged by DDP; only rank 0 writes files and reports.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> tuple:
    """-> (DistContext, device). A plain process gets a context of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, world), device


def any_rank(flag: bool, device) -> bool:
    """True on every rank if it is true on any: all ranks must stop at the same batch."""
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_float(value: float, device) -> float:
    t = torch.tensor([float(value)], device=device, dtype=torch.float64)
    dist.broadcast(t, src=0)
    return float(t.item())


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
