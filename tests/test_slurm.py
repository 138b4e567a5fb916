"""The workflow on a real one-node SLURM cluster (tests/cluster/slurm_cluster.py): the README's
command, what its jobs ask for (the README's table) and their kept logs, GPUs asked for and
given, pre-emption and requeue, DDP over the allocation, failures that are not retried, requests
no node can meet. Skipped, with the reason, where the cluster
cannot run (not root, no packages); in CI (`ATDR_REQUIRE_SLURM`, set by .ci/run) that fails.

The tests share one workflow folder. First the README's command runs the workflow to the end;
then two workflows run at once in that folder, re-training single runs (one pre-empted three
times beside one that fails for good; one over two processes); last, a request no node meets
stops a workflow before it submits anything."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml

from atdr.slurm import _minutes, job_fields
from conftest import train_attempts

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent / "cluster"))
import slurm_cluster  # noqa: E402

pytestmark = pytest.mark.slow
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
STEPS_PER_EPOCH = 4  # 128 training clips, batch 32


def readme_command(partition: str) -> list[str]:
    """The README's SLURM command for a cluster without accounting, with the test's partition."""
    ours = [c for c in slurm_cluster.readme_commands(ROOT / "README.md") if "--slurm-no-account" in c]
    assert len(ours) == 1 and "YOUR_PARTITION" in ours[0], "the README should show one command without accounting"
    return shlex.split(ours[0].replace("YOUR_PARTITION", partition))


@pytest.fixture(scope="module")
def cluster():
    """The test cluster `.ci/run` started, else one started (and stopped) here."""
    running = slurm_cluster.running()
    if running:
        yield running
        return
    try:
        started = slurm_cluster.up()
    except slurm_cluster.Unavailable as e:
        if os.environ.get("ATDR_REQUIRE_SLURM"):  # CI: the SLURM tests must run
            pytest.fail(f"no SLURM test cluster: {e}")
        pytest.skip(f"no SLURM test cluster: {e}")
    yield started
    started.stop()


def snakemake(cluster, workdir: Path, *targets: str, extra: tuple[str, ...] = (), config: Path | None = None,
              output: Path | None = None) -> subprocess.Popen:
    """The README's command (targets first, the test's folder and config last); its output goes to
    a pipe, or to file `output` (for a run that nobody reads while it runs)."""
    cmd = [sys.executable, "-m", *readme_command(cluster.partition), *extra, "--directory", str(workdir),
           "--configfile", str(config or workdir / "tiny.yaml")]
    cmd[3:3] = targets  # after `-m snakemake`
    if output is None:
        return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with output.open("w") as stdout:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=stdout, stderr=subprocess.STDOUT, text=True)
    proc.output_path = output  # for finish()
    return proc


def finish(proc: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=timeout)
    path = getattr(proc, "output_path", None)
    return proc.returncode, path.read_text() if path else output


def train_log(workdir: Path, model: str, seed: int) -> Path:
    """The run's own log, where every attempt appends (the workflow's log is replaced by each start)."""
    return workdir / "results" / "synth" / model / f"seed{seed}" / "train.log"


@dataclass
class Finished:
    """The README's command run to the end: its folder, output and SLURM job records."""

    workdir: Path
    output: str
    records: list[dict[str, str]]


@pytest.fixture(scope="module")
def finished(cluster, tmp_path_factory) -> Finished:
    workdir = tmp_path_factory.mktemp("slurm")
    slurm_cluster.small_config(workdir / "tiny.yaml")
    before = len(cluster.job_records())  # a cluster started by .ci/run may have run other jobs
    code, output = finish(snakemake(cluster, workdir))
    assert code == 0, output[-4000:]
    return Finished(workdir, output, cluster.job_records()[before:])


def table_row(job: dict[str, str]) -> slurm_cluster.TableRow:
    """The row of the README's job table for a SLURM job of the workflow, from the executor's
    comment: rule_<rule>_wildcards_<values> for a rule's job, rule_<group>_<its rules> for a group's."""
    name = re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", job["Comment"])[1]
    rows = [row for row in slurm_cluster.readme_job_table(ROOT / "README.md") if name == row.job or (
        name.startswith(f"{row.job}_") and set(name[len(row.job) + 1:].split("_")) <= {
            word for step in row.steps for word in step.split("_")})]
    assert len(rows) == 1, (name, rows)
    return rows[0]


def test_readme_command_runs_the_workflow_to_the_comparison(finished):
    table = pd.read_csv(finished.workdir / "results" / "comparison" / "tiny" / "table.csv")
    assert set(table.model) == {"linear", "transformer", "pair"}
    assert (finished.workdir / "results" / "comparison" / "tiny" / "mAP_by_model.png").stat().st_size > 1000
    # a job for the data preparation, one per packed split and front-end, per run (training and
    # evaluation), and one for the report
    jobs = sorted(table_row(job_fields(record["JobId"])).job for record in finished.records)
    assert jobs == ["evaluate"] * 4 + ["norm_stats", "pack", "pack", "prepare", "report"] + ["train"] * 4, jobs


def test_jobs_ask_for_what_the_readme_table_says(finished):
    for record in finished.records:
        job = job_fields(record["JobId"])
        row = table_row(job)
        gpus = re.search(r"gpu:(\d+)", job.get("TresPerJob", ""))
        asked = (int(job["NumCPUs"]), int(re.search(r"mem=(\d+)M", job["TRES"])[1]), _minutes(job["TimeLimit"]),
                 int(gpus[1]) if gpus else 0)
        assert asked == (row.cpus, row.mem_mb, row.minutes, 1 if row.gpus else 0), (row, job)  # gpus_per_run: 1


def test_each_jobs_slurm_log_is_kept(finished):
    logs = finished.workdir / ".snakemake" / "slurm_logs"
    for record in finished.records:
        (log,) = logs.rglob(f"{record['JobId']}.log")
        assert "Finished jobid" in log.read_text(), log


def test_training_jobs_ask_for_a_gpu_and_slurm_gives_it(finished):
    for record in finished.records:
        job = job_fields(record["JobId"])
        if job["Comment"].startswith("rule_train"):
            assert job["TresPerJob"] == "gres:gpu:1" and job["NumCPUs"] == "8" and "mem=32000M" in job["TRES"], job
    for model in ("linear", "transformer"):
        for seed in (0, 1):
            (start,) = train_attempts(train_log(finished.workdir, model, seed))
            assert re.search(r"SLURM job \d+, restart 0, CUDA_VISIBLE_DEVICES=[0-2]\n", start), start[:300]


def test_never_more_gpu_jobs_at_once_than_gpus(finished):
    spans = []
    for record in finished.records:
        if job_fields(record["JobId"])["Comment"].startswith("rule_train"):
            spans.append((datetime.fromisoformat(record["StartTime"]), datetime.fromisoformat(record["EndTime"])))
    assert len(spans) == 4
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])  # ends sort first
    running, most = 0, 0
    for _, change in events:
        running += change
        most = max(most, running)
    assert most == slurm_cluster.NODE["gpus"]  # 4 runs, 3 GPUs: three at a time, then one


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        assert proc.poll() is None, f"snakemake ended (exit {proc.returncode}) while waiting for {what}"
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def _pending(pid: int, signum: int) -> bool:
    """Whether signal `signum` waits to be delivered to process `pid` (/proc: ShdPnd, SigPnd)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return any(int(mask, 16) >> (signum - 1) & 1 for mask in re.findall(r"(?m)^(?:ShdPnd|SigPnd):\s*(\w+)", status))


def preempt_mid_epoch(job: str, supervisor: int) -> None:
    """Send the trainer of SLURM job `job` (the child of `atdr train --restarts`, pid `supervisor`)
    SLURM's SIGTERM (`scancel --signal=TERM`, as a pre-emption does) where it is now, mid-epoch.

    The tiny run's steps take a few hundredths of a second, less than SLURM takes to deliver the
    signal, so the test holds the trainer (SIGSTOP) until the signal is pending, then lets it go on:
    it meets the signal after the step it is in."""
    trainer = psutil.Process(supervisor).children()[0]
    trainer.suspend()
    try:
        subprocess.run(["scancel", "--signal=TERM", job], check=True)
        deadline = time.monotonic() + 30
        while not _pending(trainer.pid, signal.SIGTERM) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        trainer.resume()


@dataclass
class Rerun:
    """A workflow run again on some targets: its exit code and output."""

    code: int
    output: str


@dataclass
class SecondPhase:
    workdir: Path
    preempted: Rerun  # linear seed 0 (pre-empted three times) beside needs_cuda seed 0 (fails for good)
    ddp: Rerun  # linear seed 1 over two processes
    reference: np.ndarray  # linear seed 0's predictions from the uninterrupted first run


@pytest.fixture(scope="module")
def second_phase(cluster, finished, tmp_path_factory) -> SecondPhase:
    """Two workflows at once in the first one's folder (its data prepared), as a user may run them:

    - linear seed 0 trained again and sent SIGTERM mid-epoch three times (what SLURM sends to
      pre-empt; `scancel --signal=TERM`), beside a model that needs CUDA, a failure that would
      recur (`--keep-going`: the other run goes on);
    - linear seed 1 trained again with `gpus_per_run=2`: one run, two processes."""
    workdir, logs = finished.workdir, tmp_path_factory.mktemp("second_phase")
    runs = workdir / "results" / "synth" / "linear"
    reference = np.load(runs / "seed0" / "predictions.npy")
    for seed in (0, 1):
        shutil.rmtree(runs / f"seed{seed}")
    broken = yaml.safe_load((workdir / "tiny.yaml").read_text())
    broken["models"]["needs_cuda"] = {**broken["models"]["linear"], "train": {"device": "cuda"}}
    (logs / "broken.yaml").write_text(yaml.safe_dump(broken))

    preempted = snakemake(cluster, workdir, "results/synth/linear/seed0/checkpoints/best.pt",
                          "results/synth/needs_cuda/seed0/checkpoints/best.pt", extra=("--keep-going",),
                          config=logs / "broken.yaml", output=logs / "preempted.txt")
    ddp = snakemake(cluster, workdir, "results/synth/linear/seed1/checkpoints/best.pt",
                    extra=("--config", "gpus_per_run=2"), output=logs / "ddp.txt")
    log = runs / "seed0" / "train.log"  # the run's own log: each requeue runs the job again, replacing the workflow's
    for k in range(3):
        def at_an_epochs_first_step(k=k):
            parts = train_attempts(log)[k:] if log.exists() else []
            if not parts:
                return None
            since_resume = parts[0][parts[0].find("resuming") + 1:]
            for epoch, step in re.findall(r"epoch (\d+) step (\d+):", since_resume):
                if int(step) % STEPS_PER_EPOCH == 1 and int(epoch) > k:
                    return parts[0]
            return None
        attempt = _wait_for(at_an_epochs_first_step, 300, f"attempt {k + 1} to train", preempted, every=0.02)
        preempt_mid_epoch(re.search(r"SLURM job (\d+)", attempt)[1], int(re.search(r", pid (\d+),", attempt)[1]))
    return SecondPhase(workdir, Rerun(*finish(preempted)), Rerun(*finish(ddp)), reference)


def test_preempted_training_job_is_requeued_and_resumes_each_time(second_phase):
    """Each time the trainer saves, requeues its job and SLURM starts it again; it resumes from its
    step and ends as the uninterrupted run did, without using a retry."""
    assert "Trying to restart" not in second_phase.preempted.output
    run = second_phase.workdir / "results" / "synth" / "linear" / "seed0"
    parts = train_attempts(run / "train.log")
    assert [re.search(r"restart (\d+)", p)[1] for p in parts] == ["0", "1", "2", "3"]
    resumed = [int(re.search(r"resuming \S+ at epoch \d+ \([^)]*; step (\d+)\)", p)[1]) for p in parts[1:]]
    assert resumed == sorted(resumed) and all(step % STEPS_PER_EPOCH for step in resumed), resumed
    assert all("requeueing SLURM job" in p for p in parts[:3])
    job = re.search(r"SLURM job (\d+)", parts[0])[1]
    assert job_fields(job)["Restarts"] == "3"
    (slurm_log,) = (second_phase.workdir / ".snakemake" / "slurm_logs").rglob(f"{job}.log")
    assert slurm_log.read_text().count("--executor slurm-jobstep") == 4  # each start appended, none replaced
    assert list(pd.read_csv(run / "metrics.csv").epoch) == [1, 2, 3]
    assert np.array_equal(np.load(run / "predictions.npy"), second_phase.reference)


def test_a_deterministic_failure_is_not_retried(second_phase):
    assert second_phase.preempted.code != 0
    (attempt,) = train_attempts(train_log(second_phase.workdir, "needs_cuda", 0))
    assert "train.device is cuda but no CUDA device is available" in attempt
    assert "starting it again" not in attempt and "requeueing" not in attempt
    assert job_fields(re.search(r"SLURM job (\d+)", attempt)[1])["Restarts"] == "0"


def test_a_run_trains_over_the_allocation_with_two_processes(second_phase):
    assert second_phase.ddp.code == 0, second_phase.ddp.output[-3000:]
    run = second_phase.workdir / "results" / "synth" / "linear" / "seed1"
    (attempt,) = train_attempts(run / "train.log")
    assert re.search(r"CUDA_VISIBLE_DEVICES=\d,\d\n", attempt) and "cpu x2" in attempt, attempt[:2000]  # 2 DDP processes
    job = job_fields(re.search(r"SLURM job (\d+)", attempt)[1])
    assert job["TresPerJob"] == "gres:gpu:2", job
    assert list(pd.read_csv(run / "metrics.csv").epoch) == [1, 2, 3]


def test_a_request_no_node_can_meet_stops_the_workflow_at_start(cluster, finished):
    before = len(cluster.job_records())
    code, output = finish(snakemake(cluster, finished.workdir, "results/synth/linear/seed0/checkpoints/best.pt",
                                    extra=("--forcerun", "train", "--set-resources", "train:mem_mb=500000")), timeout=300)
    assert code != 0 and "has been submitted with SLURM jobid" not in output
    (message,) = [line for line in output.splitlines() if line.startswith("SLURM: ")]
    assert message.startswith("SLURM: rule train asks for 8 CPUs, 500000 MB, 1 GPUs for 1440 min, but no node of "
                              f"partition gpu offers that (at most 32 CPUs, {slurm_cluster.NODE['mem_mb']} MB"), message
    assert len(cluster.job_records()) == before
