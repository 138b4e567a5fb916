"""The training engine: learned signal, exact resume after SIGTERM, faults and bad configs."""

import json
import logging
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from atdr.cli import main
from atdr.data.datafile import read_datafile
from atdr.data.synth import synthesize
from conftest import TINY_TAL, on_a_small_disk, write_run_config

ATDR = str(Path(sys.executable).parent / "atdr")
TIMING = ["epoch_seconds", "clips_per_s"]  # wall-clock columns: the only ones allowed to differ


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("stats_*", "*.pack"))
    return dst


@pytest.fixture(scope="module")
def signal_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("signal")
    synthesize(out, n_train=300, n_eval=100, seconds=1.0, seed=1, progress=False)
    return out


@pytest.mark.parametrize("model, frontend, frames", [
    ({"name": "tal", "params": {"embedding_size": 128, "n_conv_layers": 4, "n_pool_layers": 2}}, "kaldi128", 100),
    ({"name": "transformer", "params": {"embedding_size": 64, "n_trans_layers": 2}}, "mel64", 40),
], ids=["crnn", "transformer"])
def test_models_learn_the_embedded_dataset(signal_data, tmp_path, model, frontend, frames):
    config = write_run_config(tmp_path / "run.yaml", signal_data, model, frontend=frontend, target_length=frames,
                              train={"epochs": 8, "batch_size": 32})
    assert main(["-q", "train", "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    targets = np.load(tmp_path / "run" / "targets.npy")
    chance = targets.mean(axis=0).mean()  # expected AP of a random ranking = class prevalence
    reached = json.loads((tmp_path / "run" / "summary.json").read_text())["best"]["mAP"]
    assert reached > max(2 * chance, chance + 0.25), f"mAP {reached:.3f} vs chance {chance:.3f}"


def test_run_folder_outputs(trained_run):
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["model"] == "tal" and summary["main_metric"] == "mAP" and summary["params"] > 0
    assert set(summary) >= {"best", "ensemble", "wa", "train_seconds", "clips_per_s"}
    metrics = pd.read_csv(trained_run / "metrics.csv")
    assert list(metrics.epoch) == [1, 2]
    assert {"mAP", "mAUC", "d_prime", "avg_precision", "avg_recall", "train_loss", "valid_loss", "lr",
            "epoch_seconds", "clips_per_s", "ensemble_mAP"} <= set(metrics.columns)
    preds, targets = np.load(trained_run / "predictions.npy"), np.load(trained_run / "targets.npy")
    assert preds.shape == targets.shape == (24, 10) and 0 <= preds.min() and preds.max() <= 1
    for name in ("last", "best", "wa"):
        assert (trained_run / "checkpoints" / f"{name}.pt").is_file()
    saved = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert saved["model"] == TINY_TAL and saved["optim"]["betas"] == [0.95, 0.999]


def _train_cmd(config: Path, out: Path) -> list[str]:
    return [ATDR, "train", "--config", str(config), "--out", str(out)]


TINY_LINEAR = {"name": "linear", "params": {"hidden_dim": 32, "dropout": 0.3}}


@pytest.mark.parametrize("model, frontend, frames, loader", [
    (TINY_TAL, "kaldi128", 100, "reference"), (TINY_LINEAR, "mel64", 40, "packed")],
    ids=["crnn-reference-loader", "linear-with-dropout-packed"])
def test_sigterm_saves_and_the_same_command_resumes_bit_identically(tiny_synth, tmp_path, model, frontend, frames,
                                                                     loader):
    config = write_run_config(tmp_path / "run.yaml", tiny_synth, model, frontend=frontend, target_length=frames,
                              data={"loader": loader}, augment={"mixup": 0.5, "freqm": 20, "timem": 20},
                              train={"epochs": 3, "log_every": 1, "num_workers": 2, "wa_start": 2})
    assert main(["-q", "train", "--config", str(config), "--out", str(tmp_path / "straight")]) == 0

    proc = subprocess.Popen(_train_cmd(config, tmp_path / "resumed"), stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait until training is inside epoch 2, then pre-empt it as SLURM would
        if "epoch 2 step" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 75, rest
    assert "Run the same command again to resume" in rest
    assert (tmp_path / "resumed" / "checkpoints" / "last.pt").exists()
    assert not (tmp_path / "resumed" / "summary.json").exists()

    resumed = subprocess.run(_train_cmd(config, tmp_path / "resumed"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    for name in ("predictions", "predictions_ensemble", "predictions_wa", "targets"):
        a = np.load(tmp_path / "straight" / f"{name}.npy")
        b = np.load(tmp_path / "resumed" / f"{name}.npy")
        assert np.array_equal(a, b), name
    straight = pd.read_csv(tmp_path / "straight" / "metrics.csv").drop(columns=TIMING)
    pd.testing.assert_frame_equal(straight, pd.read_csv(tmp_path / "resumed" / "metrics.csv").drop(columns=TIMING))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "straight" / "steps.csv"),
                                  pd.read_csv(tmp_path / "resumed" / "steps.csv"))


def test_packed_and_reference_loaders_train_the_same_model(tiny_synth, tmp_path):
    """Without augmentation the two data paths feed the model the same features (to float
    precision), so the same run trains to the same predictions; once packed (on first use), the
    packed path reads no audio file."""
    data = copy_dataset(tiny_synth, tmp_path / "data")
    runs = {}
    for loader in ("reference", "packed"):
        config = write_run_config(tmp_path / f"{loader}.yaml", data, TINY_TAL, data={"loader": loader},
                                  train={"epochs": 2, "eval_batch_size": 5})
        assert main(["-q", "train", "--config", str(config), "--out", str(tmp_path / loader)]) == 0
        runs[loader] = np.load(tmp_path / loader / "predictions.npy")
    np.testing.assert_allclose(runs["packed"], runs["reference"], atol=1e-4)
    shutil.rmtree(data / "audio")
    assert main(["-q", "train", "--config", str(tmp_path / "packed.yaml"), "--out", str(tmp_path / "again")]) == 0
    assert np.array_equal(np.load(tmp_path / "again" / "predictions.npy"), runs["packed"])


@pytest.mark.parametrize("options", [
    {"optim": {"fused": True}, "train": {"channels_last": True}},
    pytest.param({"train": {"compile": True}}, marks=pytest.mark.slow),
], ids=["fused-adam-channels-last", "compile"])
def test_fast_step_options_train_the_same_model(tiny_synth, tmp_path, options):
    runs = {}
    for name, extra in (("plain", {}), ("fast", options)):
        config = write_run_config(tmp_path / f"{name}.yaml", tiny_synth, TINY_TAL, optim=extra.get("optim", {}),
                                  train={"epochs": 1, **extra.get("train", {})})
        assert main(["-q", "train", "--config", str(config), "--out", str(tmp_path / name)]) == 0
        runs[name] = np.load(tmp_path / name / "predictions.npy")
    np.testing.assert_allclose(runs["fast"], runs["plain"], atol=5e-3)  # rounding differences, amplified by training


def test_validation_split_selects_the_epoch_and_eval_is_reported(tiny_synth, tmp_path):
    from atdr.data.datafile import write_datafile
    from atdr.metrics import evaluate

    valid = tmp_path / "valid.json"
    write_datafile(valid, read_datafile(tiny_synth / "train.json")[:20])
    config = write_run_config(tmp_path / "run.yaml", tiny_synth, TINY_TAL, train={"epochs": 3})
    doc = yaml.safe_load(config.read_text())
    doc["data"]["valid"] = str(valid)
    config.write_text(yaml.safe_dump(doc))
    assert main(["-q", "train", "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")  # per epoch, on the validation set
    assert summary["selected_on"] == "valid"
    assert summary["best"]["epoch"] == metrics.epoch[metrics.mAP.idxmax()]
    predictions, targets = np.load(tmp_path / "run" / "predictions.npy"), np.load(tmp_path / "run" / "targets.npy")
    assert predictions.shape == (24, 10)  # the eval set's clips, not the validation set's 20
    assert evaluate(predictions, targets).mAP == pytest.approx(summary["best"]["mAP"], abs=1e-12)
    assert summary["best"]["mAP"] != metrics.mAP.max()


def test_eval_predictions_are_fp32_whatever_the_training_precision(tiny_synth, tmp_path):
    import torch

    config = write_run_config(tmp_path / "run.yaml", tiny_synth, TINY_TAL, train={"epochs": 1, "precision": "bf16"})
    assert main(["-q", "train", "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    predictions = torch.from_numpy(np.load(tmp_path / "run" / "predictions.npy"))
    assert predictions.dtype == torch.float32
    assert (predictions.bfloat16().float() != predictions).float().mean() > 0.9  # not rounded to bf16
    assert "bf16" in (tmp_path / "run" / "config.yaml").read_text()


def test_finished_run_only_rewrites_its_outputs(trained_run, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = np.load(run / "predictions.npy")
    metrics = (run / "metrics.csv").read_text()
    for name in ("checkpoints/best.pt", "predictions.npy", "metrics.csv", "summary.json", "targets.npy"):
        (run / name).unlink()  # as Snakemake does with a job's outputs before running it again
    assert main(["train", "--config", str(run / "config.yaml"), "--out", str(run)]) == 0
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "summary.json").is_file()
    assert np.array_equal(np.load(run / "predictions.npy"), before)
    assert (run / "metrics.csv").read_text() == metrics
    assert "epoch 1/" not in caplog.text  # nothing was trained again


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("atdr train: error: "), lines
    return lines[0]


def test_a_run_folder_of_another_config_is_refused_and_forcing_removes_every_old_output(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)  # trained with weight averaging: wa.pt, predictions_wa.npy
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text("{}")  # `atdr evaluate` of the old run
    (run / "run.yaml").write_text("the workflow's input: not an output of the run\n")
    args = ["train", "--config", str(run / "config.yaml"), "--out", str(run), "--set", "optim.lr=0.002",
            "--set", "train.epochs=1", "--set", "train.wa_start=null"]
    assert main(args) == 2
    err = one_line_error(capsys.readouterr().err)
    assert "holds a run of another config (optim.lr: 0.001 -> 0.002)" in err and "--force" in err
    assert (run / "checkpoints" / "wa.pt").exists() and len(pd.read_csv(run / "metrics.csv")) == 2  # untouched

    assert main(args + ["--force"]) == 0
    assert not (run / "checkpoints" / "wa.pt").exists() and not (run / "predictions_wa.npy").exists()
    assert not (run / "eval").exists() and (run / "run.yaml").exists()
    assert len(pd.read_csv(run / "metrics.csv")) == 1
    assert "wa" not in json.loads((run / "summary.json").read_text())
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == 0.002


def test_a_second_training_on_a_locked_run_folder_stops_naming_the_holder(trained_run, tmp_path):
    import os
    import socket

    from atdr import runfolder

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    with runfolder.claim(run, config, json.loads((run / "data.json").read_text())):  # this process trains in it
        second = subprocess.run(_train_cmd(run / "config.yaml", run), capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    err = one_line_error(second.stderr)
    assert f"{run} is in use by atdr train (pid {os.getpid()} on {socket.gethostname()}" in err
    assert subprocess.run(_train_cmd(run / "config.yaml", run), capture_output=True, timeout=120).returncode == 0


def test_a_new_run_folder_with_empty_subfolders_is_not_taken_for_another_run(tiny_synth, tmp_path, caplog):
    """Snakemake creates checkpoints/ (the folder of a declared output) before the job starts."""
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    config = write_run_config(tmp_path / "run.yaml", tiny_synth, TINY_TAL, train={"epochs": 1})
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    assert "another config" not in caplog.text


def test_temporary_files_of_a_killed_save_are_removed_at_the_next_start(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    stale = [run / "checkpoints" / ".last.pt.tmp4242", run / ".metrics.csv.tmp4242"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    assert main(["-q", "train", "--config", str(run / "config.yaml"), "--out", str(run)]) == 0
    assert not any(p.exists() for p in stale)


def test_out_pointing_at_a_file_is_a_one_line_error(tiny_synth, tmp_path, capsys):
    config = write_run_config(tmp_path / "run.yaml", tiny_synth, TINY_TAL)
    target = tmp_path / "results.txt"
    target.write_text("not a folder\n")
    assert main(["train", "--config", str(config), "--out", str(target)]) == 2
    assert f"--out {target} is a file" in one_line_error(capsys.readouterr().err)
    assert main(["train", "--config", str(config), "--out", str(target / "run")]) == 2
    assert "cannot create run folder" in one_line_error(capsys.readouterr().err)


def test_a_disk_filled_by_a_checkpoint_is_a_one_line_error_with_the_space_needed(tiny_synth, tmp_path):
    disk = tmp_path / "disk"
    config = write_run_config(tmp_path / "run.yaml", tiny_synth, TINY_TAL, train={"epochs": 1})
    proc, left = on_a_small_disk(disk, [ATDR, "train", "--config", str(config), "--out", str(disk / "run")])
    assert proc.returncode == 2, proc.stderr
    err = one_line_error(proc.stderr.splitlines()[-1])
    assert re.search(rf"no space left on device: {disk / 'run' / 'checkpoints'}/\w+\.pt \(about \d+\.\d MB needed; "
                     r"free some space or write the outputs elsewhere\)", err), err
    assert not [path for path in left if ".tmp" in path]  # no half-written checkpoint


def test_norm_stats_of_another_input_length_are_an_error(tiny_synth, tmp_path, capsys):
    config = write_run_config(tmp_path / "run.yaml", tiny_synth, TINY_TAL, target_length=100)
    doc = yaml.safe_load(config.read_text())
    doc["data"]["target_length"] = 50
    config.write_text(yaml.safe_dump(doc))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = one_line_error(capsys.readouterr().err)
    assert "stats are for target_length 100, the run uses 50" in err and "--target-length 50" in err


def test_resuming_between_epochs_names_the_epoch_that_comes_next(tiny_synth, tmp_path, monkeypatch, caplog):
    """SIGTERM while epoch 1 is evaluated: the run stops between epochs; the resume log says epoch 2."""
    import os

    from atdr.train import Scoring

    scored = Scoring.epoch

    def preempted_during_evaluation(self, epoch, *args):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return scored(self, epoch, *args)

    config = write_run_config(tmp_path / "run.yaml", tiny_synth, TINY_TAL, train={"epochs": 2})
    argv = ["train", "--config", str(config), "--out", str(tmp_path / "run")]
    with monkeypatch.context() as m:
        m.setattr(Scoring, "epoch", preempted_during_evaluation)
        assert main(argv) == 75
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv").epoch) == [1]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(argv) == 0
    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming")]
    assert len(resumed) == 1 and "at epoch 2 (1 of 2 epochs finished; step 3)" in resumed[0], resumed
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv").epoch) == [1, 2]


def test_nan_loss_stops_with_the_step_and_last_good_checkpoint(tiny_synth, tmp_path, capsys):
    data = copy_dataset(tiny_synth, tmp_path / "data")
    config = write_run_config(tmp_path / "run.yaml", data, TINY_TAL)
    doc = yaml.safe_load(config.read_text())
    doc["data"].pop("norm_stats")
    doc["data"] |= {"mean": -5.0, "std": 1e-38}  # valid, but every normalised feature overflows: the first step must fail
    config.write_text(yaml.safe_dump(doc))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "loss is nan at step 1 (epoch 1)" in err[0] and "Last good checkpoint: none" in err[0]


def test_unreadable_clip_is_logged_once_and_skipped(tiny_synth, tmp_path, caplog):
    data = copy_dataset(tiny_synth, tmp_path / "data")
    config = write_run_config(tmp_path / "run.yaml", data, TINY_TAL, train={"epochs": 2})
    broken = read_datafile(data / "train.json")[3].wav
    Path(broken).write_bytes(b"this is not audio")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    warnings = [r.getMessage() for r in caplog.records if "skipping unreadable clip" in r.getMessage()]
    assert len(warnings) == 1 and broken in warnings[0]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["clips"] == {"train": 47, "eval": 24} and summary["unreadable"] == {"train": [broken]}


def test_an_unreadable_eval_clip_is_recorded_not_silently_dropped(tiny_synth, tmp_path):
    data = copy_dataset(tiny_synth, tmp_path / "data")
    valid = tmp_path / "valid.json"
    from atdr.data.datafile import write_datafile

    write_datafile(valid, read_datafile(data / "train.json")[:12])
    config = write_run_config(tmp_path / "run.yaml", data, TINY_TAL, train={"epochs": 2, "wa_start": 1})
    doc = yaml.safe_load(config.read_text())
    doc["data"]["valid"] = str(valid)
    config.write_text(yaml.safe_dump(doc))
    broken = read_datafile(data / "eval.json")[5].wav
    Path(broken).write_bytes(b"RIFF, but no audio")
    assert main(["-q", "train", "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["clips"] == {"train": 48, "valid": 12, "eval": 23}
    assert summary["unreadable"] == {"eval": [broken]}
    for name in ("predictions", "predictions_ensemble", "predictions_wa", "targets"):
        assert np.load(tmp_path / "run" / f"{name}.npy").shape == (23, 10), name


def test_conversion_notes_are_given_once_per_run(tiny_synth, tmp_path):
    """44.1 kHz stereo clips read by 2 workers over 3 epochs and 2 scored sets: each note once."""
    data = copy_dataset(tiny_synth, tmp_path / "data")
    for clip in read_datafile(data / "train.json")[::2] + read_datafile(data / "eval.json")[::2]:
        wave, rate = sf.read(clip.wav, dtype="float32")
        at_44k = np.interp(np.arange(0, len(wave), rate / 44100), np.arange(len(wave)), wave)
        sf.write(clip.wav, np.stack([at_44k, at_44k], axis=1), 44100)
    config = write_run_config(tmp_path / "run.yaml", data, TINY_TAL,
                              train={"epochs": 3, "num_workers": 2, "log_every": 1000})
    doc = yaml.safe_load(config.read_text())
    doc["data"].pop("norm_stats")
    doc["data"].update(mean=-5.0, std=4.0)
    doc["data"]["valid"] = doc["data"]["eval"]
    config.write_text(yaml.safe_dump(doc))
    proc = subprocess.run(_train_cmd(config, tmp_path / "run"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    notes = [line.split(" ", 1)[1] for line in proc.stderr.splitlines() if " note: " in line]
    assert sorted(notes) == ["note: downmixing 2-channel clips to mono",
                             "note: resampling clips from 44100 Hz to 16000 Hz"], proc.stderr


@pytest.mark.parametrize("change, message", [
    ({"optim": {"lrr": 0.1}}, "unknown key 'optim.lrr'"),
    ({"train": {"epochs": "ten"}}, "train.epochs: Input should be a valid integer"),
    ({"model": {"name": "tal", "params": {"embeding_size": 8}}}, "model 'tal' has no hyper-parameter 'embeding_size'"),
    ({"model": {"name": "tal", "params": {"embedding_size": "big"}}}, "embedding_size must be int"),
    ({"model": {"name": "vgg"}}, "unknown model 'vgg'"),
    ({"data": {"mean": 1.0, "std": 2.0}}, "give either norm_stats or mean and std"),
    ({"augment": {"mixup": 1.5}}, "augment.mixup: Input should be less than or equal to 1"),
    ({"train": {"wa_start": 9}}, "wa_start is after the last epoch"),
    ({"train": {"amp": True}}, "train: 'amp' was replaced by 'precision' (auto, fp32, fp16 or bf16)"),
])
def test_bad_config_is_rejected_before_any_work(tiny_synth, tmp_path, capsys, change, message):
    config = write_run_config(tmp_path / "run.yaml", tiny_synth, TINY_TAL)
    doc = yaml.safe_load(config.read_text())
    for section, values in change.items():
        doc[section] = values if section == "model" else {**doc.get(section, {}), **values}
    config.write_text(yaml.safe_dump(doc))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists()


def _config_with(config: Path, where: str, values: dict[str, str]) -> list[str]:
    """`values` (dotted key -> YAML text) written into the config file as they are, or returned as
    `--set` overrides."""
    if where == "--set":
        return [f"{key}={text}" for key, text in values.items()]
    doc = yaml.safe_load(config.read_text())
    for i, key in enumerate(values):
        *sections, leaf = key.split(".")
        node = doc
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = f"VALUE_{i}_"
    text = yaml.safe_dump(doc)
    for i, value in enumerate(values.values()):
        text = text.replace(f"VALUE_{i}_", value)
    config.write_text(text)
    return []


@pytest.mark.parametrize("where", ["file", "--set"])
def test_numbers_in_exponent_notation_are_numbers_and_integral_ones_fit_integer_keys(tiny_synth, tmp_path, where):
    """PyYAML (YAML 1.1) reads 1e3 as a string; a user, and YAML 1.2, mean a number."""
    from atdr.config import load_config

    config = write_run_config(tmp_path / "run.yaml", tiny_synth, TINY_TAL)
    overrides = _config_with(config, where, {"train.seed": "1e3", "train.epochs": "2E0", "optim.lr": "1e-3",
                                             "optim.weight_decay": "5.0e-7", "model.params.embedding_size": "1.6e1"})
    cfg = load_config(config, overrides).to_dict()
    assert (cfg["train"]["seed"], cfg["train"]["epochs"], cfg["optim"]["lr"], cfg["optim"]["weight_decay"],
            cfg["model"]["params"]["embedding_size"]) == (1000, 2, 1e-3, 5e-7, 16)
    assert type(cfg["train"]["seed"]) is int and type(cfg["model"]["params"]["embedding_size"]) is int


@pytest.mark.parametrize("key, text, message", [
    ("augment.mixup", "yes", "augment.mixup: expected a number, not a boolean (YAML reads yes, no, on and off as "
                             "booleans) (got True)"),
    ("optim.betas", "[on, 0.999]", "optim.betas: expected a number, not a boolean"),
    ("optim.lr", ".inf", "optim.lr: Input should be a finite number (got inf)"),
    ("optim.betas", "[0.9, .nan]", "optim.betas.1: Input should be a finite number"),
    ("train.seed", "1.5", "train.seed: Input should be a valid integer, got a number with a fractional part"),
    ("model.params.embedding_size", "1.6e1.5", "model 'tal': embedding_size must be int, got '1.6e1.5'"),
    ("model.params.dropout", ".nan", "model 'tal': dropout must be a finite number, got nan"),
    ("model.params.dropout", "yes", "model 'tal': dropout must be float, got True"),
])
@pytest.mark.parametrize("where", ["file", "--set"])
def test_numbers_must_be_finite_and_never_booleans(tiny_synth, tmp_path, capsys, key, text, message, where):
    config = write_run_config(tmp_path / "run.yaml", tiny_synth, TINY_TAL)
    overrides = _config_with(config, where, {key: text})
    sets = [arg for override in overrides for arg in ("--set", override)]
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run"), *sets]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_set_overrides_and_bad_set_syntax(tiny_synth, tmp_path, capsys):
    config = write_run_config(tmp_path / "run.yaml", tiny_synth, TINY_TAL)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r"), "--set", "train.epochs"]) == 2
    assert "expected section.key=value" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert "cannot read config" in capsys.readouterr().err
