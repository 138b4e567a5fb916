"""What atdr reads from SLURM without a cluster: sinfo's node sizes, a job's request as the
executor submits it, the warning for requests no node can meet, and the training jobs' GPUs."""

import math
import subprocess

import pytest

from atdr import slurm
from atdr.workflow import loader_workers, train_gpus

SINFO = """gpu01|gpu*|64|512000|gpu:a100:4(S:0-1)|2-00:00:00
gpu02|gpu*|64|512000|gpu:a100:4(S:0-1)|2-00:00:00
cpu01|short|32|128000|(null)|4:00:00
big01|big|128|1024000|gpu:a100:2,gpu:v100:2|infinite
"""


def test_sinfo_rows_are_read():
    nodes = slurm.parse_sinfo(SINFO)
    assert [(n.name, n.partition, n.default, n.cpus, n.mem_mb, n.gpus) for n in nodes] == [
        ("gpu01", "gpu", True, 64, 512000, 4), ("gpu02", "gpu", True, 64, 512000, 4),
        ("cpu01", "short", False, 32, 128000, 0), ("big01", "big", False, 128, 1024000, 4)]
    assert [n.time_limit_min for n in nodes] == [2880, 2880, 240, math.inf]


@pytest.mark.parametrize("limit, minutes", [("30", 30), ("30:00", 30), ("1:30:00", 90), ("2-00:00:00", 2880),
                                            ("1-12", 2160), ("UNLIMITED", math.inf)])
def test_time_limits(limit, minutes):
    assert slurm._minutes(limit) == minutes


def test_a_request_is_what_the_executor_submits():
    train = slurm.request_of("train", {"mem_mb": 32000, "runtime": 1440, "gpu": 1, "slurm_partition": "gpu"}, 8)
    assert (train.partition, train.nodes, train.cpus, train.mem_mb, train.gpus, train.runtime_min) == ("gpu", 1, 8, 32000,
                                                                                                      1, 1440)
    wide = slurm.request_of("train", {"cpus_per_task": 16, "mem_mb_per_cpu": 1000, "nodes": 2, "gres": "gpu:4",
                                      "gpu": 0}, 8)
    assert (wide.partition, wide.nodes, wide.cpus, wide.mem_mb, wide.gpus) == (None, 2, 16, 16000, 4)


def test_requests_no_node_can_meet_are_named():
    nodes = slurm.parse_sinfo(SINFO)
    fits = slurm.request_of("train", {"mem_mb": 32000, "runtime": 1440, "gpu": 4}, 8)
    assert slurm.unmet(fits, nodes) is None
    assert slurm.unmet(slurm.request_of("train", {"nodes": 2, "gres": "gpu:4"}, 8), nodes) is None
    too_many_nodes = slurm.unmet(slurm.request_of("train", {"nodes": 3, "gres": "gpu:4"}, 8), nodes)
    assert "2 nodes fit" in too_many_nodes
    too_long = slurm.unmet(slurm.request_of("train", {"runtime": 3000, "gpu": 1}, 8), nodes)
    assert "the default partition" in too_long and "a time limit of 2880 min" in too_long
    no_gpu = slurm.unmet(slurm.request_of("train", {"gpu": 1, "slurm_partition": "short"}, 8), nodes)
    assert no_gpu.startswith("rule train asks for 8 CPUs, 0 MB, 1 GPUs") and "partition short" in no_gpu
    assert "--set-threads train=N" in no_gpu
    assert "does not exist" in slurm.unmet(slurm.request_of("x", {"slurm_partition": "gpus"}, 1), nodes)


def test_training_jobs_gpus_on_one_node_or_several():
    assert train_gpus({"gpus_per_run": 2}) == {"gpu": 2}
    assert train_gpus({"gpus_per_run": 4, "gpus_per_node": 4}) == {"gpu": 4}
    assert train_gpus({"gpus_per_run": 8, "gpus_per_node": 4}) == {"gpu": 0, "nodes": 2, "gres": "gpu:4"}
    assert loader_workers({"gpus_per_run": 1}, 8) == 7
    assert loader_workers({"gpus_per_run": 8, "gpus_per_node": 4}, 32) == 7
    assert loader_workers({"gpus_per_run": 0}, 1) == 0


@pytest.mark.parametrize("state, reason, requeued", [
    ("RUNNING", "None", True),  # pre-emption within GraceTime, scancel --signal=TERM, --signal=TERM@120
    ("COMPLETING", "TimeLimit", True),  # at the time limit
    ("COMPLETING", "None", False),  # cancelled, or requeued by SLURM itself (as measured on the test cluster)
    ("UNKNOWN", "None", False),  # scontrol did not answer
])
def test_a_stopped_job_is_requeued_only_while_it_runs_or_at_its_time_limit(monkeypatch, state, reason, requeued):
    calls = []

    def scontrol(*args, timeout=60):
        calls.append(args)
        out = f"JobId=7 JobName=x JobState={state} Reason={reason} Restarts=0" if args[1] == "show" else ""
        return subprocess.CompletedProcess(args, 0, out, "")

    monkeypatch.setattr(slurm, "_command", scontrol)
    assert slurm.requeue_after_stop("7") is requeued
    assert (("scontrol", "requeue", "7") in calls) is requeued
