"""torch.distributed for `torchrun` launches: process group set-up and the few collectives the
training loop needs. A plain `atdr train` is a world of one and calls no collective."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: str = "cpu"  # where collectives' tensors live (nccl needs CUDA)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float) -> float:
        """Average of `value` over ranks."""
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.item() / self.size

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on one (e.g. a stop signal reached one rank)."""
        if self.size == 1:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(t)
        return bool(t.item())

    def union(self, items: list[int]) -> list[int]:
        """The sorted union of every rank's `items` (e.g. the training clips each found unreadable)."""
        if self.size == 1:
            return sorted(set(items))
        gathered: list[list[int] | None] = [None] * self.size
        dist.all_gather_object(gathered, items)
        return sorted(set().union(*gathered))

    def broadcast(self, value: T) -> T:
        """Rank 0's `value` on every rank (a barrier too)."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def init_world(use_cuda: bool) -> World:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); gloo on CPU, nccl on GPU."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(device="cuda:0" if use_cuda else "cpu")  # the first visible GPU: the one claimed
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    world = World(int(os.environ["RANK"]), size, local_rank, f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return world


def close_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
