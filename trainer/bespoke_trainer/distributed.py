"""Device placement and the few collective operations the recipe needs (torchrun DDP)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as tdist

__all__ = ["Dist", "setup"]

T = TypeVar("T")


@dataclass
class Dist:
    """This process's rank, world size and device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, artifacts and the summary."""
        return self.rank == 0

    def autocast(self) -> Any:
        """bf16 autocast on CUDA; full precision on CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def broadcast(self, obj: T) -> T:
        """Rank 0's value on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.distributed:
            tdist.barrier()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel under torchrun, the model itself otherwise."""
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def close(self) -> None:
        """Tear down the process group."""
        if self.distributed and tdist.is_initialized():
            tdist.destroy_process_group()


def setup() -> Dist:
    """Read torchrun's environment, join the process group and pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    # torchrun sets RANK even for one process; joining the group then exercises the same
    # DDP path a multi-GPU pod takes.
    distributed = "RANK" in os.environ and "MASTER_ADDR" in os.environ
    if distributed and not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world, device=device, distributed=distributed)
