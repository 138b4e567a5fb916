"""Giving each training job its own GPUs on a shared machine.

Snakemake's `--resources gpu=4` bounds how many GPUs concurrent jobs hold, but not which ones.
`claim_gpus(n)` takes `n` free devices by holding an exclusive lock file per device (released
when the process exits, even on a crash) and exports them as CUDA_VISIBLE_DEVICES. Where
CUDA_VISIBLE_DEVICES is already set (SLURM, a user's choice) it is respected as is.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from atdr.errors import AtdrError

if TYPE_CHECKING:
    import torch

_held: list = []  # open lock files: kept for the life of the process


def device_count() -> int:
    """NVIDIA GPUs on this machine, read with nvidia-smi: asking torch would initialise CUDA,
    after which CUDA_VISIBLE_DEVICES is no longer read."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines()) if out.returncode == 0 else 0


def claim_gpus(n: int, lock_dir: str | Path | None = None, wait_s: float = 600.0) -> list[int] | None:
    """Claim `n` GPUs and set CUDA_VISIBLE_DEVICES; None if already set or `n` is 0.

    Waits up to `wait_s` for devices held by other jobs to be released.
    """
    if n <= 0 or "CUDA_VISIBLE_DEVICES" in os.environ:
        return None
    total = device_count()
    if n > total:
        raise AtdrError(f"asked for {n} GPUs, this machine has {total}")
    lock_dir = Path(lock_dir or os.environ.get("ATDR_GPU_LOCKS", Path(tempfile.gettempdir()) / "atdr-gpu-locks"))
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        claimed = []
        for device in range(total):
            f = open(lock_dir / f"gpu{device}.lock", "w")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            os.set_inheritable(f.fileno(), True)  # still held after exec (torchrun) and by its children
            claimed.append((device, f))
            if len(claimed) == n:
                _held.extend(f for _, f in claimed)
                devices = [d for d, _ in claimed]
                os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, devices))
                return devices
        for _, f in claimed:
            f.close()
        if time.monotonic() > deadline:
            raise AtdrError(f"could not claim {n} free GPU(s) within {wait_s:g} s: other jobs hold them (locks in {lock_dir})")
        time.sleep(2.0)


def claim_device(gpus: int) -> torch.device:
    """For one-process jobs (probing, timing): with `gpus` 1 a free GPU claimed as `claim_gpus`
    does where the machine has one, else (or with 0) the CPU."""
    import torch

    if gpus and "CUDA_VISIBLE_DEVICES" not in os.environ and device_count() > 0:
        claim_gpus(1)
    return torch.device("cuda" if gpus and torch.cuda.is_available() else "cpu")
