"""The epoch sampler: which clips an epoch visits, in which order, and each visit's seed.

An epoch's plan is a pure function of `(seed, epoch)`: uniform shuffling, or weighted sampling
with replacement from a weight file (balanced training). Each item carries its own augmentation
seed, so results do not depend on the number of data workers. With `world_size > 1` each rank
takes every `world_size`-th item of the same plan (DDP), and `start` skips items already consumed
(exact resume mid-epoch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[tuple[int, int]]):
    def __init__(
        self,
        num_clips: int,
        weights: np.ndarray | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.num_clips = num_clips
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Plan epoch `epoch`; skip the first `start` items of this rank's share."""
        self.epoch = epoch
        self.start = start

    def plan(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole epoch (all ranks): clip indices and per-item seeds."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.num_clips, replacement=True, generator=g)
        else:
            order = torch.randperm(self.num_clips, generator=g)
        seeds = torch.randint(0, 2**62, (self.num_clips,), generator=g)
        total = self.per_rank * self.world_size  # pad by wrapping so every rank gets as many
        repeat = math.ceil(total / self.num_clips)
        return order.repeat(repeat)[:total], seeds.repeat(repeat)[:total]

    @property
    def per_rank(self) -> int:
        return math.ceil(self.num_clips / self.world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order, seeds = self.plan()
        mine = slice(self.rank + self.start * self.world_size, None, self.world_size)
        return zip(order[mine].tolist(), seeds[mine].tolist())

    def __len__(self) -> int:
        return self.per_rank - self.start
