"""Normalisation statistics of a dataset's features, for `(x - mean) / (2 * std)`.

Two methods, per front-end (kaldi128 and mel64 features have very different ranges), both over
the unnormalised features as the model sees them (padded/cropped to `target_length`, padding
included):

- `exact` (`compute_norm_stats`, the default): mean and standard deviation over every value of
  every clip's unaugmented features, accumulated in float64.
- `original` (`compute_norm_stats_original`): as the original `src/get_norm_stats.py`, which
  gave the paper's fixed numbers: training features augmented (mixup, SpecAugment), the mean
  and std of each batch of clips, averaged over the batches.

Clips that cannot be read (with the dataset's `skip_unreadable`) are left out and named in the
result, as training leaves them out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from atdr.atomic import write_text
from atdr.data.dataset import AudioDataset, batch_loader
from atdr.errors import AtdrError


@dataclass(frozen=True)
class NormStats:
    mean: float
    std: float
    frontend: str
    target_length: int
    clips: int  # those read
    method: str = "exact"  # or "original"
    settings: dict = field(default_factory=dict)  # the original method's augmentation, batch size and seed
    unreadable: list[str] = field(default_factory=list)  # the clips left out: they could not be read

    def write(self, path: str | Path) -> None:
        write_text(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> NormStats:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            stats = cls(**doc)
        except OSError as e:
            raise AtdrError(f"cannot read norm stats {path}: {e.strerror}") from None
        except (json.JSONDecodeError, TypeError) as e:
            raise AtdrError(f"{path}: not a norm-stats file written by `atdr norm-stats` ({e})") from None
        if not (math.isfinite(stats.mean) and math.isfinite(stats.std) and stats.std > 0):
            raise AtdrError(f"{path}: mean/std must be finite and std > 0")
        return stats


def compute_norm_stats(dataset: AudioDataset, num_workers: int = 0, progress: bool = True) -> NormStats:
    """Exact mean/std of `dataset`'s features (it must have `norm=None` and no augmentation)."""
    if dataset.norm is not None:
        raise ValueError("norm stats need unnormalised features (norm=None)")
    loader = batch_loader(dataset, 16, num_workers=num_workers)
    count, mean, m2 = 0, 0.0, 0.0  # running count, mean and sum of squared deviations (Chan et al.)
    unreadable: list[int] = []
    for x in _features(tqdm(loader, desc="norm stats", unit="batch", disable=None if progress else True), unreadable):
        n, batch_mean = x.numel(), x.mean().item()
        batch_m2 = ((x - batch_mean) ** 2).sum().item()
        delta = batch_mean - mean
        mean += delta * n / (count + n)
        m2 += batch_m2 + delta * delta * count * n / (count + n)
        count += n
    left_out = _left_out(dataset, unreadable)
    return NormStats(mean, math.sqrt(m2 / count), dataset.frontend.name, dataset.target_length,
                     len(dataset) - len(left_out), unreadable=left_out)


def compute_norm_stats_original(
    dataset: AudioDataset, batch_size: int = 1000, seed: int = 0, num_workers: int = 0, progress: bool = True
) -> NormStats:
    """Mean/std of `dataset`'s augmented features as `src/get_norm_stats.py` computes them.

    `dataset` (with `norm=None`) augments each clip by its `augment` settings (the script: mixup
    0.5, freqm 24, timem 192; the paper's numbers used each recipe's own); clip i with seed
    `seed * len(dataset) + i`. In datafile order, batches of `batch_size` clips; each gives the
    mean and the (unbiased) standard deviation of all its values; the result averages them over
    batches, the last, smaller batch weighing as much as the others.
    """
    if dataset.norm is not None:
        raise ValueError("norm stats need unnormalised features (norm=None)")
    n = len(dataset)
    keys = [(i, seed * n + i) for i in range(n)]
    loader = batch_loader(dataset, batch_size, sampler=keys, num_workers=num_workers)
    means, stds = [], []
    unreadable: list[int] = []
    batches = tqdm(loader, desc="norm stats (original)", unit="batch", disable=None if progress else True)
    for x in _features(batches, unreadable):
        means.append(x.mean().item())
        stds.append(x.std().item())
    left_out = _left_out(dataset, unreadable)
    aug = dataset.augment
    settings = dict(mixup=aug.mixup, mixup_alpha=aug.mixup_alpha, freqm=aug.freqm, timem=aug.timem,
                    batch_size=batch_size, seed=seed)
    return NormStats(float(np.mean(means)), float(np.mean(stds)), dataset.frontend.name, dataset.target_length,
                     n - len(left_out), "original", settings, left_out)


def _features(batches: Iterator, unreadable: list[int]) -> Iterator[torch.Tensor]:
    """The float64 features of each `batch_loader` batch; the indices of the clips that could not
    be read are added to `unreadable`."""
    for batch in batches:
        unreadable += batch.unreadable
        if batch.clips is not None:
            yield batch.clips[0].double()


def _left_out(dataset: AudioDataset, unreadable: list[int]) -> list[str]:
    """The clips that could not be read, by file; `AtdrError` when none could."""
    if len(unreadable) == len(dataset):
        raise AtdrError(f"none of the {len(dataset)} clips could be read")
    return [dataset.clips[i].wav for i in sorted(unreadable)]
