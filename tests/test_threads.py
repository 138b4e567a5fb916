"""Torch threads of a training process: the job's CPUs less its data workers, set once at set-up,
logged, and passed by the workflow from the job's threads."""

import logging
import os

import pytest
import torch

from atdr.config import results_relevant
from atdr.threads import job_cpus, set_torch_threads
from atdr.workflow import loader_workers, torch_threads


@pytest.fixture
def sixteen_cpus(monkeypatch):
    """A process allowed on 16 CPUs, outside SLURM and torchrun; torch's threads restored after."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    for name in ("SLURM_CPUS_PER_TASK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(threads)


def test_threads_are_the_job_cpus_less_the_data_workers(sixteen_cpus, caplog):
    with caplog.at_level(logging.INFO, logger="atdr.threads"):
        assert set_torch_threads(None, 2) == 14 == torch.get_num_threads()
    assert "14 torch threads (16 CPUs for this process, 2 of them for data workers)" in caplog.text
    assert set_torch_threads(None, 20) == 1 == torch.get_num_threads()  # at least one
    assert set_torch_threads(3, 2) == 3 == torch.get_num_threads()  # train.threads


def test_job_cpus_come_from_slurm_or_are_shared_by_torchrun_processes(sixteen_cpus):
    assert job_cpus() == 16
    sixteen_cpus.setenv("LOCAL_WORLD_SIZE", "4")  # 4 processes of torchrun on this node
    assert job_cpus() == 4
    sixteen_cpus.setenv("SLURM_CPUS_PER_TASK", "6")  # SLURM's share for this task
    assert job_cpus() == 6
    assert set_torch_threads(None, 2) == 4


def test_train_threads_is_not_part_of_a_runs_identity():
    run = {"train": {"epochs": 3, "threads": 2}}
    assert results_relevant(run) == results_relevant({"train": {"epochs": 3, "threads": None}})


@pytest.mark.parametrize("config, threads, workers, torch", [
    ({"gpus_per_run": 1}, 2, 1, 1), ({"gpus_per_run": 1}, 8, 7, 1), ({"gpus_per_run": 0}, 1, 0, 1),
    ({"gpus_per_run": 4}, 16, 3, 1)])
def test_a_training_job_splits_its_threads_between_workers_and_torch(config, threads, workers, torch):
    assert loader_workers(config, threads) == workers and torch_threads(config, threads) == torch
    assert (workers + torch) * max(config["gpus_per_run"], 1) <= threads  # one thread per CPU of the job


def test_the_workflow_passes_each_training_job_its_threads(tmp_path):
    from test_workflow import snakemake

    result = snakemake(tmp_path, "-n", "-p", "--forcerun", "train")
    commands = [line for line in result.stdout.splitlines() if "atdr train" in line]
    assert commands, result.stdout[-2000:] + result.stderr[-2000:]
    assert all("--set train.num_workers=1 --set train.threads=1" in line for line in commands)  # --cores 2
