"""`atdr train --restarts`: the trainer is started again after pre-emption and transient faults,
never after a deterministic failure; a signal to the job itself stops it."""

import argparse
import errno
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from atdr.commands.train import _trainers
from atdr.errors import EXIT_PREEMPTED, EXIT_TRANSIENT, EXIT_USER_ERROR
from atdr.supervise import is_transient, supervise
from conftest import write_run_config

LINEAR = {"name": "linear", "params": {"hidden_dim": 32}}


def _exits(tmp_path: Path, *codes: int) -> list[str]:
    """A command that exits with codes[k] on its k-th run (counted in a file), then 0."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        count = {str(tmp_path / "runs")!r}
        n = len(open(count).read()) if os.path.exists(count) else 0
        open(count, "a").write("x")
        codes = {list(codes)!r}
        code = codes[n] if n < len(codes) else 0
        if code < 0:
            os.kill(os.getpid(), -code)
        sys.exit(code)
    """))
    return [sys.executable, str(script)]


def _runs(tmp_path: Path) -> int:
    return len((tmp_path / "runs").read_text())


@pytest.mark.parametrize("codes, restarts, result, runs", [
    ((EXIT_PREEMPTED, EXIT_TRANSIENT, -signal.SIGKILL), 3, 0, 4),  # pre-empted, a fault, the OOM killer: resumed
    ((EXIT_TRANSIENT,) * 5, 2, EXIT_TRANSIENT, 3),  # gives up after its restarts
    ((EXIT_USER_ERROR,), 3, EXIT_USER_ERROR, 1),  # a bad config or missing data: not retried
    ((1,), 3, 1, 1),  # a bug: not retried
    ((-signal.SIGSEGV,) * 2, 1, 128 + signal.SIGSEGV, 2),
])
def test_what_is_restarted(tmp_path, codes, restarts, result, runs):
    assert supervise(_exits(tmp_path, *codes), {}, restarts, in_slurm=False) == result
    assert _runs(tmp_path) == runs


def test_transient_faults_are_told_from_lasting_ones():
    assert is_transient(OSError(errno.EIO, "Input/output error"))
    assert is_transient(OSError(errno.ESTALE, "Stale file handle"))
    assert is_transient(RuntimeError("DataLoader worker (pid(s) 1234) exited unexpectedly"))
    assert is_transient(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not is_transient(FileNotFoundError(errno.ENOENT, "No such file or directory"))
    assert not is_transient(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_transient(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_transient(ValueError("bad value"))


@pytest.fixture
def config(tiny_synth, tmp_path):
    return write_run_config(tmp_path / "run.yaml", tiny_synth, LINEAR, frontend="mel64", target_length=40,
                            train={"epochs": 3, "batch_size": 8, "log_every": 1, "num_workers": 1})


def _start(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "atdr", "train", "--config", str(config), "--out", str(out),
                             "--restarts", "2", *extra], stderr=subprocess.PIPE, text=True)


def _signal_in_epoch_2(proc: subprocess.Popen, sig: int, trainer: bool) -> str:
    """Send `sig` to the trainer (the child) or to `atdr train` itself once epoch 2 is under way;
    return the whole log."""
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "epoch 2 step" in line and sig:
            target = psutil.Process(proc.pid)
            (target.children()[0] if trainer else target).send_signal(sig)
            sig = 0
    proc.wait(timeout=300)
    return "".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "sigterm"])
def test_a_trainer_stopped_alone_is_started_again_and_ends_as_an_uninterrupted_run(config, tmp_path, sig):
    straight = subprocess.run([sys.executable, "-m", "atdr", "-q", "train", "--config", str(config), "--out",
                               str(tmp_path / "straight")], capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr
    proc = _start(config, tmp_path / "run")
    log = _signal_in_epoch_2(proc, sig, trainer=True)
    assert proc.returncode == 0, log
    assert f"the trainer {'was killed by SIGKILL' if sig == signal.SIGKILL else 'was stopped by SIGTERM'}" in log
    assert "starting it again (restart 1 of 2)" in log and "resuming" in log
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv").epoch) == [1, 2, 3]
    assert np.array_equal(np.load(tmp_path / "run" / "predictions.npy"),
                          np.load(tmp_path / "straight" / "predictions.npy"))


@pytest.mark.slow
def test_sigterm_to_the_job_stops_it_without_a_restart(config, tmp_path):
    proc = _start(config, tmp_path / "run")
    log = _signal_in_epoch_2(proc, signal.SIGTERM, trainer=False)
    assert proc.returncode == EXIT_PREEMPTED, log
    assert "starting it again" not in log and "state saved" in log
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    again = _start(config, tmp_path / "run")  # the same command resumes; the run's log keeps both attempts
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    run_log = (tmp_path / "run" / "train.log").read_text()
    assert run_log.count(" atdr train ") == 2 and run_log.index("stopped in epoch 2") < run_log.index("resuming")


def test_a_deterministic_failure_is_not_restarted(config, tmp_path):
    proc = _start(config, tmp_path / "run", "--set", "train.device=cuda")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_USER_ERROR
    assert err.count("train.device is cuda but no CUDA device is available") == 1
    assert "starting it again" not in err


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """A folder holding an `atdr/` of its own (a user's data, say) that must never be imported."""
    package = tmp_path / "project" / "atdr"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('imported atdr/ from the working folder')\n")
    return package.parent


def test_restarted_trainers_never_import_the_working_folders_atdr(config, tmp_path, user_folder):
    atdr = Path(sys.executable).parent / "atdr"
    result = subprocess.run([str(atdr), "-q", "train", "--config", str(config), "--out", str(tmp_path / "run"),
                             "--restarts", "1", "--set", "train.epochs=1"], cwd=user_folder, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and "from the working folder" not in result.stderr, result.stderr
    assert (tmp_path / "run" / "predictions.npy").exists()


@pytest.mark.slow
def test_torchruns_trainers_never_import_the_working_folders_atdr(config, tmp_path, user_folder):
    """The command `atdr train --gpus 2` runs with CUDA (torchrun, 2 processes), run on the CPU."""
    args = argparse.Namespace(config=str(config), out=str(tmp_path / "run"), set=["train.epochs=1"], force=False,
                              gpus=2, restarts=0)
    argv, env = _trainers(args, cuda=True, job=None)
    assert argv[1:3] == ["-m", "torch.distributed.run"]
    result = subprocess.run(argv, env={**env, "OMP_NUM_THREADS": "1"}, cwd=user_folder, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "from the working folder" not in result.stderr, result.stderr[-3000:]
    assert (tmp_path / "run" / "predictions.npy").exists()
