"""What atdr reads from SLURM without a cluster: sinfo's node sizes, a job's request as the
executor submits it, the start-up error for requests no node can meet, and the training jobs'
GPUs; the README's SLURM command against a stand-in for SLURM's commands."""

import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from atdr import slurm
from atdr.workflow import loader_workers, train_gpus

sys.path.insert(0, str(Path(__file__).parent / "cluster"))
from slurm_cluster import readme_commands, readme_job_table  # noqa: E402

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


# The README's command without a cluster: SLURM's commands replaced by scripts that describe one
# node (sinfo), record each submission and refuse it (sbatch), so that nothing runs.

ROOT = Path(__file__).resolve().parents[1]
NODE = "node01|gpu*|8|32000|gpu:1|infinite"  # the README's stated node: one training job's request


def readme_submissions(tmp_path: Path, sinfo: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """The README's SLURM command (the default config) where sinfo describes `sinfo`'s rows: its
    output and the sbatch calls it made (each refused, `--keep-going`: every job ready at start)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sinfo.txt").write_text(sinfo + "\n")
    scripts = {"sinfo": 'cat "$(dirname "$0")/sinfo.txt"',
               "sbatch": 'printf "%s\\n" "$*" >> "$(dirname "$0")/sbatch.log"; echo "sbatch: error: no cluster" >&2; exit 1',
               **{command: "exit 1" for command in ("scontrol", "squeue", "sacct", "srun")}}
    for name, body in scripts.items():
        (fake / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake / name).chmod(0o755)
    (command,) = [c for c in readme_commands(ROOT / "README.md") if "--slurm-no-account" in c]
    args = shlex.split(command.replace("YOUR_PARTITION", "gpu"))
    env = {**os.environ, "PATH": os.pathsep.join([str(fake), str(Path(sys.executable).parent), os.environ["PATH"]])}
    result = subprocess.run([sys.executable, "-m", *args, "--keep-going", "--directory", str(tmp_path / "work")],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    log = fake / "sbatch.log"
    return result, log.read_text().splitlines() if log.exists() else []


def sbatch_option(call: str, pattern: str) -> str:
    return re.search(pattern, call)[1]


def test_readme_command_submits_only_jobs_that_fit_the_stated_node(tmp_path):
    """Every job ready at the start fits a node of 8 CPUs and 32 GB and asks for what the README's
    table says: the preparation group job (its steps side by side within --cores), and no job for
    the analyses' run configs (local)."""
    result, calls = readme_submissions(tmp_path, NODE)
    output = result.stdout + result.stderr
    assert "SLURM: " not in output, output[-3000:]
    (prepare,) = calls  # no job for analysis_run_config: it runs where Snakemake runs
    assert sbatch_option(prepare, r"--comment '?(rule_[a-z]+)") == "rule_prepare", prepare
    asked = [int(sbatch_option(prepare, pattern)) for pattern in (r"--cpus-per-task=(\d+)", r"--mem (\d+)", r" -t (\d+)")]
    (row,) = [row for row in readme_job_table(ROOT / "README.md") if row.job == "prepare"]
    assert asked == [row.cpus, row.mem_mb, row.minutes] and row.cpus <= 8 and row.mem_mb <= 32000, prepare


def test_a_job_no_node_can_run_stops_the_workflow_before_any_submission(tmp_path):
    result, calls = readme_submissions(tmp_path, "small01|gpu*|4|16000|gpu:1|infinite")
    assert result.returncode != 0 and calls == []
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("SLURM: ")]
    assert any(line.startswith("SLURM: rule train asks for 8 CPUs, 32000 MB, 1 GPUs for 1440 min, but no node of "
                               "partition gpu offers that (at most 4 CPUs, 16000 MB, 1 GPUs and no time limit")
               and "--set-threads train=N" in line for line in lines), lines
    assert any(line.startswith("SLURM: group prepare asks for 8 CPUs") and "--cores N" in line for line in lines), lines
    assert "Traceback" not in result.stdout + result.stderr
