"""The workflow on a real one-node SLURM cluster (tests/cluster/slurm_cluster.py): the README's
command, GPUs asked for and given, pre-emption and requeue, DDP over the allocation, failures
that are not retried, requests no node can meet. Skipped, with the reason, where the cluster
cannot run (not root, no packages).

The tests share one workflow folder and run in order: the first runs the README's command, the
others re-run single training jobs in it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

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
    try:
        started = slurm_cluster.up()
    except slurm_cluster.Unavailable as e:
        pytest.skip(f"no SLURM test cluster: {e}")
    yield started
    started.stop()


def tiny_config(path: Path, **models: dict) -> Path:
    """The default config made small: two models, two seeds, 128 training clips, 3 epochs."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["datasets"]["synth"]["synth"] = {"train": 128, "eval": 32, "seconds": 1.0, "seed": 0}
    config["models"] = {name: config["models"][name] for name in ("linear", "transformer")} | models
    config["seeds"] = [0, 1]
    config["ensembles"] = {"pair": ["linear", "transformer"]}
    config["run_defaults"]["train"].update(epochs=3, wa_start=2, log_every=1)
    config["bootstrap"] = 20
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(cluster, workdir: Path, *targets: str, extra: tuple[str, ...] = (), config: Path | None = None,
              **popen) -> subprocess.Popen:
    """The README's command (targets first, the test's folder and config last)."""
    cmd = [sys.executable, "-m", *readme_command(cluster.partition), *extra, "--directory", str(workdir),
           "--configfile", str(config or workdir / "tiny.yaml")]
    cmd[3:3] = targets  # after `-m snakemake`
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def finish(proc: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=timeout)
    return proc.returncode, output


def show_job(job: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "--oneliner", job], capture_output=True, text=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def train_log(workdir: Path, model: str, seed: int) -> Path:
    return workdir / "results" / "logs" / "synth" / model / f"seed{seed}" / "train.log"


def attempts(log: Path) -> list[str]:
    """The log split at each `atdr train` start (one part per attempt, appended)."""
    return re.split(r"(?m)^(?=[\d:\- ]+ atdr train )", log.read_text())[1:]


@pytest.fixture(scope="module")
def finished(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm")
    tiny_config(workdir / "tiny.yaml")
    code, output = finish(snakemake(cluster, workdir))
    assert code == 0, output[-4000:]
    return workdir, output


def test_readme_command_runs_the_workflow_to_the_comparison(cluster, finished):
    workdir, _ = finished
    table = pd.read_csv(workdir / "results" / "comparison" / "tiny" / "table.csv")
    assert set(table.model) == {"linear", "transformer", "pair"}
    assert (workdir / "results" / "comparison" / "tiny" / "mAP_by_model.png").stat().st_size > 1000
    # one SLURM job per training run, one for the data preparation, one for evaluation and report
    comments = [show_job(record["JobId"]).get("Comment", "") for record in cluster.job_records()]
    assert sorted(c.split("_")[1] for c in comments) == ["prepare", "report", "train", "train", "train", "train"], comments


def test_training_jobs_ask_for_a_gpu_and_slurm_gives_it(cluster, finished):
    workdir, _ = finished
    for record in cluster.job_records():
        job = show_job(record["JobId"])
        if job["Comment"].startswith("rule_train"):
            assert job["TresPerJob"] == "gres:gpu:1" and job["NumCPUs"] == "8" and "mem=32000M" in job["TRES"], job
    for model in ("linear", "transformer"):
        for seed in (0, 1):
            (start,) = attempts(train_log(workdir, model, seed))
            assert re.search(r"SLURM job \d+, restart 0, CUDA_VISIBLE_DEVICES=[01]\n", start), start[:300]


def test_never_more_gpu_jobs_at_once_than_gpus(cluster, finished):
    spans = []
    for record in cluster.job_records():
        if show_job(record["JobId"])["Comment"].startswith("rule_train"):
            spans.append((datetime.fromisoformat(record["StartTime"]), datetime.fromisoformat(record["EndTime"])))
    assert len(spans) == 4
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])  # ends sort first
    running, most = 0, 0
    for _, change in events:
        running += change
        most = max(most, running)
    assert most == slurm_cluster.NODE["gpus"]  # 4 runs, 2 GPUs: two at a time


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        assert proc.poll() is None, f"snakemake ended (exit {proc.returncode}) while waiting for {what}"
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_preempted_training_job_is_requeued_and_resumes_each_time(cluster, finished):
    """SIGTERM mid-epoch (what SLURM sends to pre-empt), three times: each time the trainer saves,
    requeues its job and SLURM starts it again; it resumes from its step and ends as an
    uninterrupted run does, without using a retry."""
    workdir, _ = finished
    run = workdir / "results" / "synth" / "linear" / "seed0"
    reference = np.load(run / "predictions.npy")
    shutil.rmtree(run)
    log = run / "train.log"  # the run's own log: each requeue runs the job again, which replaces the workflow's
    proc = snakemake(cluster, workdir, f"{run.relative_to(workdir)}/checkpoints/best.pt")
    for k in range(3):
        def at_an_epochs_first_step():  # then the trainer stops after this step or the next: mid-epoch
            parts = attempts(log)[k:] if log.exists() else []
            if not parts:
                return None
            since_resume = parts[0][parts[0].find("resuming") + 1:]
            for epoch, step in re.findall(r"epoch (\d+) step (\d+):", since_resume):
                if int(step) % STEPS_PER_EPOCH == 1 and int(epoch) > k:
                    return re.search(r"SLURM job (\d+)", parts[0])[1]
            return None
        job = _wait_for(at_an_epochs_first_step, 300, f"attempt {k + 1} to train", proc)
        subprocess.run(["scancel", "--signal=TERM", job], check=True)
    code, output = finish(proc)
    assert code == 0, output[-3000:]
    assert "Trying to restart" not in output
    parts = attempts(log)
    assert [re.search(r"restart (\d+)", p)[1] for p in parts] == ["0", "1", "2", "3"]
    resumed = [int(re.search(r"resuming \S+ at epoch \d+ \([^)]*; step (\d+)\)", p)[1]) for p in parts[1:]]
    assert resumed == sorted(resumed) and all(step % STEPS_PER_EPOCH for step in resumed), resumed
    assert all("requeueing SLURM job" in p for p in parts[:3])
    assert show_job(re.search(r"SLURM job (\d+)", parts[0])[1])["Restarts"] == "3"
    assert list(pd.read_csv(run / "metrics.csv").epoch) == [1, 2, 3]
    assert np.array_equal(np.load(run / "predictions.npy"), reference)


def test_a_run_trains_over_the_allocation_with_two_processes(cluster, finished):
    workdir, _ = finished
    run = workdir / "results" / "synth" / "linear" / "seed1"
    shutil.rmtree(run)
    code, output = finish(snakemake(cluster, workdir, f"{run.relative_to(workdir)}/checkpoints/best.pt",
                                    extra=("--config", "gpus_per_run=2")))
    assert code == 0, output[-3000:]
    last = attempts(train_log(workdir, "linear", 1))[-1]
    assert "CUDA_VISIBLE_DEVICES=0,1" in last and "cpu x2" in last, last[:2000]  # two DDP processes (gloo)
    job = show_job(re.search(r"SLURM job (\d+)", last)[1])
    assert job["TresPerJob"] == "gres:gpu:2", job
    assert list(pd.read_csv(run / "metrics.csv").epoch) == [1, 2, 3]


def test_a_deterministic_failure_is_not_retried(cluster, finished, tmp_path):
    workdir, _ = finished
    broken = yaml.safe_load((workdir / "tiny.yaml").read_text())
    broken["models"]["needs_cuda"] = {**broken["models"]["linear"], "train": {"device": "cuda"}}
    config = tmp_path / "broken.yaml"
    config.write_text(yaml.safe_dump(broken))
    code, output = finish(snakemake(cluster, workdir, "results/synth/needs_cuda/seed0/checkpoints/best.pt",
                                    config=config))
    assert code != 0 and "Trying to restart" not in output
    (attempt,) = attempts(train_log(workdir, "needs_cuda", 0))
    assert "train.device is cuda but no CUDA device is available" in attempt
    assert "starting it again" not in attempt and "requeueing" not in attempt
    assert show_job(re.search(r"SLURM job (\d+)", attempt)[1])["Restarts"] == "0"


def test_a_request_no_node_can_meet_is_reported(cluster, finished):
    workdir, _ = finished
    proc = snakemake(cluster, workdir, "results/synth/linear/seed0/checkpoints/best.pt",
                     extra=("--forcerun", "train", "--set-resources", "train:mem_mb=500000"))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        _wait_for(lambda: any("SLURM: rule train asks for" in line for line in lines), 300, "the warning", proc)
    finally:
        proc.send_signal(signal.SIGINT)  # Snakemake cancels the job, which would wait forever
        proc.wait(timeout=120)
    message = next(line for line in lines if "SLURM: rule train asks for" in line)
    assert "500000 MB" in message and f"at most 32 CPUs, {slurm_cluster.NODE['mem_mb']} MB" in message, message
