"""Shared by the benchmark scripts: timing, the synthetic packed dataset, the csv output."""

from __future__ import annotations

import csv
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from atdr.atomic import atomic_path
from atdr.data.datafile import read_datafile
from atdr.data.labels import LabelSet
from atdr.data.pack import PackedStore, pack
from atdr.data.synth import synthesize


def best_seconds(fn: Callable[[], object], repeats: int = 3, sync: bool = False, warm_up: bool = True) -> float:
    """The fastest of `repeats` timed calls of `fn`, after one untimed warm-up call. The best
    time, not the mean: on a shared machine, other processes only ever make a call slower."""
    if warm_up:
        fn()
    best = float("inf")
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def machine() -> str:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    load = ", load %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} CPU cores ({cpu}{load}), {torch.get_num_threads()} torch threads{gpu}"


def synthetic_dataset(folder: str | Path, clips: int, seconds: float):
    """`clips` synthetic training clips of `seconds` s, packed: (clips, labels, store)."""
    folder = Path(folder)
    synthesize(folder, n_train=clips, n_eval=1, seconds=seconds, progress=False)
    labels = LabelSet.read(folder / "class_labels_indices.csv")
    pack(folder / "train.json", folder / "train.pack", progress=False)
    return read_datafile(folder / "train.json", labels), labels, PackedStore(folder / "train.pack")


def write_csv(path: str | Path | None, rows: list[dict]) -> None:
    if not path or not rows:
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
