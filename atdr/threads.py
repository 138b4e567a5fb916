"""Torch's threads in a training process, sized from the CPUs its job may use.

torch starts as many intra-op threads as the machine has cores, whatever share of them the job
was given. A training process whose data workers (one thread each: DataLoader sets it) already
keep the job's CPUs busy then runs its own threads on the same cores, and OpenMP threads that wait
for each other on busy cores make every step many times slower. `set_torch_threads` gives the
training process what its workers leave, once, at set-up.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def job_cpus() -> int:
    """CPUs for this process: SLURM's CPUs per task where the job step sets them, else the CPUs
    the process may run on (its affinity: taskset, cgroup cpusets, SLURM's binding), shared
    equally by the processes torchrun started on this node (`LOCAL_WORLD_SIZE`)."""
    affinity = len(os.sched_getaffinity(0))
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm:
        return max(min(int(slurm), affinity), 1)
    return max(affinity // int(os.environ.get("LOCAL_WORLD_SIZE", 1)), 1)


def set_torch_threads(requested: int | None, workers: int) -> int:
    """Set torch's intra-op threads to `requested`, or to the job's CPUs less one per data worker
    (at least 1); log and return the number."""
    if requested:
        threads, why = requested, "train.threads"
    else:
        cpus = job_cpus()
        threads, why = max(cpus - workers, 1), f"{cpus} CPUs for this process, {workers} of them for data workers"
    torch.set_num_threads(threads)
    log.info("%d torch thread%s (%s)", threads, "s" * (threads > 1), why)
    return threads
