"""Data-parallel training: torchrun with 2 CPU processes (gloo) computes the same run as one process.

Why they can agree: every rank builds the same model from the same seed (and DDP broadcasts
rank 0's weights), `EpochSampler` gives rank r every 2nd item of the same epoch plan, so the two
ranks' batches of step k together are exactly the single process's batch k, and each item's
augmentation is seeded per item, not per process. DDP averages the two ranks' gradients of their
mean losses, which equals the gradient of the mean loss over the whole batch when the halves are
of equal size. With no BatchNorm (batch statistics would be per rank) and no dropout (random
masks per process) the two runs are the same computation.

Why not bit-identical: the sums are done in another order (each rank reduces over 8 items, then
gloo adds the two halves; one process reduces over 16 at once), and float32 addition is not
associative. The difference is rounding-level (~1e-7 relative) at the first step and grows
slowly over a few Adam steps; rtol 1e-4 leaves room for that and still catches any real
difference (a wrong shard, a missing gradient average, a different augmentation), which moves
the loss in the second or third digit.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import write_run_config

RTOL = 1e-4
MODEL = {"name": "transformer", "params": {"embedding_size": 32, "n_trans_layers": 1, "dropout": 0.0}}


def _losses(run: Path) -> list[tuple[int, int, float]]:
    with open(run / "steps.csv", newline="") as f:
        return [(int(r["step"]), int(r["epoch"]), float(r["loss"])) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def runs(tiny_synth, tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The same config trained by one process and by torchrun with two."""
    tmp = tmp_path_factory.mktemp("ddp")
    # 48 training clips, global batch 16 (8 per rank): 3 full steps per epoch; warm-up off; mixup and
    # SpecAugment on, by the reference loader (seeded per item, so the same whatever process draws
    # the item; the packed path augments per batch, and each rank's batch is half the single one)
    config = write_run_config(tmp / "run.yaml", tiny_synth, MODEL, frontend="mel64", target_length=40,
                              data={"loader": "reference"}, augment={"mixup": 0.5, "freqm": 8, "timem": 8},
                              optim={"warmup_steps": 0},
                              train={"epochs": 2, "batch_size": 16, "log_every": 1, "num_workers": 0, "seed": 3})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 processes on 2 cores: no oversubscription
    train = ["-m", "atdr", "train", "--config", str(config), "--out"]
    single = subprocess.run([sys.executable, *train, str(tmp / "single")], env=env, capture_output=True, text=True,
                            timeout=120)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          *train, str(tmp / "ddp")], env=env, capture_output=True, text=True, timeout=180)
    assert ddp.returncode == 0, ddp.stderr
    return tmp / "single", tmp / "ddp", ddp


def test_ddp_and_single_process_take_the_same_steps(runs):
    single, ddp, _ = runs
    one, two = _losses(single), _losses(ddp)
    assert [s[:2] for s in one] == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]  # every step logged, once
    assert [s[:2] for s in two] == [s[:2] for s in one]
    a, b = np.array([s[2] for s in one]), np.array([s[2] for s in two])
    np.testing.assert_allclose(b, a, rtol=RTOL)
    assert len(set(a.round(4))) == len(a)  # the loss moves from step to step: the comparison has teeth


def test_ddp_run_finishes_like_the_single_process_run(runs):
    single, ddp, proc = runs
    for run in (single, ddp):
        for name in ("summary.json", "metrics.csv", "predictions.npy", "targets.npy", "checkpoints/best.pt",
                     "checkpoints/last.pt"):
            assert (run / name).is_file(), run / name
    s1, s2 = (json.loads((run / "summary.json").read_text()) for run in (single, ddp))
    assert s1["model"] == s2["model"] == "transformer" and s1["device"] == s2["device"] == "cpu"
    assert s1["best"]["epoch"] == s2["best"]["epoch"]
    assert s2["best"]["mAP"] == pytest.approx(s1["best"]["mAP"], abs=1e-3)
    np.testing.assert_array_equal(np.load(ddp / "targets.npy"), np.load(single / "targets.npy"))
    np.testing.assert_allclose(np.load(ddp / "predictions.npy"), np.load(single / "predictions.npy"),
                               rtol=1e-3, atol=1e-5)
    with open(single / "metrics.csv", newline="") as f1, open(ddp / "metrics.csv", newline="") as f2:
        for r1, r2 in zip(csv.DictReader(f1), csv.DictReader(f2), strict=True):
            assert float(r2["train_loss"]) == pytest.approx(float(r1["train_loss"]), rel=RTOL)
    assert "parameters, cpu x2" in proc.stderr  # it did run as a world of two processes


def test_ddp_run_lists_the_unreadable_clips_every_rank_met(tiny_synth, tmp_path):
    """Each rank skips the broken clips of its own shard; the run's summary lists them all."""
    rows = [{**row, "wav": str(tiny_synth / row["wav"])}  # datafile paths are relative to the datafile
            for row in json.loads((tiny_synth / "train.json").read_text())["data"]]
    broken = []
    for i in range(6):  # spread over the epoch plan: both ranks meet some
        path = tmp_path / f"broken{i}.wav"
        path.write_bytes(b"RIFF not audio")
        broken.append(str(path))
        rows.insert(8 * i, {"wav": str(path), "labels": rows[0]["labels"]})
    (tmp_path / "train.json").write_text(json.dumps({"data": rows}))
    config = write_run_config(tmp_path / "run.yaml", tiny_synth, MODEL, frontend="mel64", target_length=40,
                              data={"loader": "reference", "train": str(tmp_path / "train.json")},
                              optim={"warmup_steps": 0}, train={"epochs": 1, "batch_size": 16, "num_workers": 0})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "atdr", "train", "--config", str(config), "--out", str(tmp_path / "ddp")],
                         env=env, capture_output=True, text=True, timeout=180)
    assert ddp.returncode == 0, ddp.stderr
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert sorted(summary["unreadable"]["train"]) == sorted(broken)
    assert summary["clips"]["train"] == len(rows) - len(broken)
