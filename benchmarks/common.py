"""Shared by the benchmark scripts: timing, the synthetic packed dataset, the csv output."""

from __future__ import annotations

import csv
import os
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import soundfile as sf
import torch

from atdr.atomic import atomic_path
from atdr.data.audio import SAMPLE_RATE
from atdr.data.datafile import read_datafile, write_datafile
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


def best_seconds_each(fns: dict[str, Callable[[], object]], repeats: int = 3,
                      sync: bool = False) -> dict[str, tuple[float, float]]:
    """For each function, the fewest wall-clock seconds and the fewest CPU seconds (this process
    and its child processes: data workers) of `repeats` calls, timed in turns (one call of each
    per round, after a warm-up round): a change of the machine's load reaches all of them alike,
    and the CPU seconds hardly depend on it."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, (float("inf"), float("inf")))
    for _ in range(repeats):
        for name, fn in fns.items():
            cpu = cpu_seconds()
            wall = best_seconds(fn, repeats=1, sync=sync, warm_up=False)
            best[name] = min(best[name][0], wall), min(best[name][1], cpu_seconds() - cpu)
    return best


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its live child processes (Linux's /proc)."""
    total = sum(os.times()[:2])
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # it has just ended
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def machine() -> str:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    load = ", load %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} CPU cores ({cpu}{load}), {torch.get_num_threads()} torch threads{gpu}"


def synthetic_dataset(folder: str | Path, clips: int, seconds: float, audio_format: str = "wav"):
    """`clips` synthetic training clips of `seconds` s, 16 kHz mono 16-bit in `wav` or `flac`
    files, packed: (clips, labels, store)."""
    folder = Path(folder)
    synthesize(folder, n_train=clips, n_eval=1, seconds=seconds, progress=False)
    labels = LabelSet.read(folder / "class_labels_indices.csv")
    datafile = folder / "train.json"
    if audio_format != "wav":
        converted = []
        for clip in read_datafile(datafile):
            path = Path(clip.wav).with_suffix(f".{audio_format}")
            sf.write(path, sf.read(clip.wav, dtype="int16")[0], SAMPLE_RATE, subtype="PCM_16")
            converted.append(replace(clip, wav=str(path)))
        datafile = folder / f"train_{audio_format}.json"
        write_datafile(datafile, converted)
    pack(datafile, folder / "train.pack", progress=False)
    return read_datafile(datafile, labels), labels, PackedStore(folder / "train.pack")


def write_csv(path: str | Path | None, rows: list[dict]) -> None:
    if not path or not rows:
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
