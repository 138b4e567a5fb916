"""`atdr evaluate` and `atdr ensemble` on real run folders: metrics against sklearn, the bootstrap
CI, per-class tables with display names, checkpoints on a datafile, and one-line errors."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import average_precision_score

from atdr.cli import main
from conftest import TINY_TAL, write_run_config

SETS = {"best": "predictions.npy", "ensemble": "predictions_ensemble.npy", "wa": "predictions_wa.npy"}


def sklearn_aps(predictions: np.ndarray, targets: np.ndarray) -> dict[int, float]:
    """Class index -> sklearn AP, for the classes with at least one positive clip."""
    y = targets >= 0.5
    return {k: average_precision_score(y[:, k], predictions[:, k]) for k in range(y.shape[1]) if y[:, k].any()}


def sklearn_map(predictions: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean(list(sklearn_aps(predictions, targets).values())))


def one_line_error(err: str, command: str) -> str:
    err = err.strip()
    assert err.startswith(f"atdr {command}: error: ") and "\n" not in err, err
    return err


@pytest.fixture(scope="module")
def run(trained_run, tmp_path_factory) -> Path:
    """A private copy of the session's trained run (evaluate writes RUN/eval)."""
    copy = tmp_path_factory.mktemp("evaluate") / "tal"
    shutil.copytree(trained_run, copy)
    return copy


@pytest.fixture(scope="module")
def second_run(trained_run, tmp_path_factory) -> Path:
    """The same tiny model and data with another seed."""
    out = tmp_path_factory.mktemp("ensemble") / "tal-seed1"
    assert main(["-q", "train", "--config", str(trained_run / "config.yaml"), "--out", str(out),
                 "--set", "train.seed=1"]) == 0
    return out


def test_evaluate_run_scores_its_predictions_like_sklearn(run):
    assert main(["-q", "evaluate", str(run)]) == 0
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"best", "ensemble", "wa"}
    targets = np.load(run / "targets.npy")
    for name, file in SETS.items():
        m = metrics[name]
        assert m["mAP"] == pytest.approx(sklearn_map(np.load(run / file), targets), abs=1e-6), name
        low, high = m["mAP_ci95"]
        assert low < m["mAP"] < high, (name, low, m["mAP"], high)
        assert high - low < 0.5  # 24 clips: wide, but not the whole range
    summary = json.loads((run / "summary.json").read_text())
    assert metrics["best"]["mAP"] == pytest.approx(summary["best"]["mAP"], abs=1e-9)


def test_per_class_table_has_every_class_with_its_display_name_and_ap(run):
    if not (run / "eval" / "per_class_best.csv").exists():
        assert main(["-q", "evaluate", str(run), "--bootstrap", "0"]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    with open(config["data"]["labels"], newline="") as f:
        classes = {int(r["index"]): (r["mid"], r["display_name"]) for r in csv.DictReader(f)}
    with open(run / "eval" / "per_class_best.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["index"]) for r in rows) == sorted(classes) and len(rows) == len(classes) == 10
    predictions, targets = np.load(run / "predictions.npy"), np.load(run / "targets.npy")
    aps = sklearn_aps(predictions, targets)
    for r in rows:
        k = int(r["index"])
        assert (r["mid"], r["display_name"]) == classes[k]
        assert int(r["positives"]) == int((targets[:, k] >= 0.5).sum())
        if k in aps:
            assert float(r["AP"]) == pytest.approx(aps[k], abs=1e-6), r
        else:
            assert r["AP"] == ""  # no positive clip: no AP (not counted in mAP)
    scored = [float(r["AP"]) for r in rows if r["AP"]]
    assert scored == sorted(scored, reverse=True)  # best class first


def test_bootstrap_zero_gives_no_ci(run, tmp_path):
    assert main(["-q", "evaluate", str(run), "--bootstrap", "0", "--out", str(tmp_path / "e")]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert set(metrics) == {"best", "ensemble", "wa"}
    assert all("mAP_ci95" not in m and "mAP" in m for m in metrics.values())


@pytest.mark.parametrize("checkpoint, predictions", [("best", "predictions.npy"), ("wa", "predictions_wa.npy")])
def test_checkpoint_on_the_runs_eval_datafile_reproduces_its_predictions(run, tmp_path, checkpoint, predictions):
    datafile = yaml.safe_load((run / "config.yaml").read_text())["data"]["eval"]
    args = ["-q", "evaluate", str(run), "--data", datafile, "--bootstrap", "0", "--out", str(tmp_path / "e")]
    assert main(args + ([] if checkpoint == "best" else ["--checkpoint", checkpoint])) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert set(metrics) == {checkpoint}
    own = sklearn_map(np.load(run / predictions), np.load(run / "targets.npy"))
    assert metrics[checkpoint]["mAP"] == pytest.approx(own, abs=1e-6)
    assert (tmp_path / "e" / f"per_class_{checkpoint}.csv").is_file()


def test_evaluate_a_folder_that_is_not_a_finished_run_is_a_one_line_error(run, tiny_synth, tmp_path, capsys):
    assert main(["-q", "evaluate", str(tiny_synth), "--out", str(tmp_path / "e")]) == 2
    assert "is not a run folder" in one_line_error(capsys.readouterr().err, "evaluate")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(run / "config.yaml", unfinished)
    assert main(["-q", "evaluate", str(unfinished)]) == 2
    assert "no predictions.npy" in one_line_error(capsys.readouterr().err, "evaluate")
    assert not (tmp_path / "e").exists() and not (unfinished / "eval").exists()


def test_ensemble_averages_the_runs_predictions(run, second_run, tmp_path):
    a, b = np.load(run / "predictions.npy"), np.load(second_run / "predictions.npy")
    assert a.shape == b.shape and not np.array_equal(a, b)  # the seeds gave different models
    out = tmp_path / "ens"
    assert main(["-q", "ensemble", str(run), str(second_run), "--out", str(out)]) == 0
    average = np.load(out / "predictions.npy")
    assert average.shape == a.shape and np.array_equal(average, (a + b) / 2)
    targets = np.load(run / "targets.npy")
    assert np.array_equal(np.load(out / "targets.npy"), targets)
    assert (out / "predictions_clips.csv").read_text() == (run / "predictions_clips.csv").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["members"] == [str(run), str(second_run)] and metrics["use"] == "best" and metrics["left_out"] == []
    assert metrics["ensemble"]["mAP"] == pytest.approx(sklearn_map(average, targets), abs=1e-6)
    low, high = metrics["ensemble"]["mAP_ci95"]
    assert low < metrics["ensemble"]["mAP"] < high
    assert (out / "per_class_ensemble.csv").is_file()


def _variant(src: Path, dst: Path, change: str) -> Path:
    """A copy of run `src` that was evaluated on other clips or with another class list."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoints"))
    clips = (dst / "predictions_clips.csv").read_text().splitlines()
    if change == "fewer clips":
        for name in ("targets.npy", "predictions.npy"):
            np.save(dst / name, np.load(dst / name)[:-4])
        (dst / "predictions_clips.csv").write_text("\n".join(clips[:-4]) + "\n")
        summary = json.loads((dst / "summary.json").read_text())
        summary["clips"]["eval"] -= 4
        (dst / "summary.json").write_text(json.dumps(summary))
    elif change == "other files":
        clips[1] = clips[1].replace(".wav", "_other.wav")
        (dst / "predictions_clips.csv").write_text("\n".join(clips) + "\n")
    elif change == "lost clips":  # rows missing, but not recorded as unreadable
        for name in ("targets.npy", "predictions.npy"):
            np.save(dst / name, np.load(dst / name)[1:])
        (dst / "predictions_clips.csv").write_text("\n".join(clips[:1] + clips[2:]) + "\n")
    elif change == "other labels":
        targets = np.load(dst / "targets.npy")
        targets[3] = 1 - targets[3]
        np.save(dst / "targets.npy", targets)
    else:  # another class list: one class replaced
        config = yaml.safe_load((dst / "config.yaml").read_text())
        lines = Path(config["data"]["labels"]).read_text().splitlines()
        lines[-1] = lines[-1].split(",")[0] + ',/m/0other,"Another class"'
        (dst / "labels.csv").write_text("\n".join(lines) + "\n")
        config["data"]["labels"] = str(dst / "labels.csv")
        (dst / "config.yaml").write_text(yaml.safe_dump(config))
    return dst


@pytest.mark.parametrize("change, message", [
    ("fewer clips", "was evaluated on other clips than"),
    ("other files", "was evaluated on other clips than"),
    ("lost clips", "its outputs disagree"),
    ("other labels", "was evaluated with other labels than"),
    ("other classes", "was evaluated with other classes than"),
])
def test_ensemble_of_runs_on_different_eval_sets_or_classes_is_a_one_line_error(run, second_run, tmp_path, capsys,
                                                                                 change, message):
    other = _variant(second_run, tmp_path / "other", change)
    out = tmp_path / "ens"
    assert main(["-q", "ensemble", str(run), str(other), "--out", str(out)]) == 2
    err = one_line_error(capsys.readouterr().err, "ensemble")
    assert str(other) in err and message in err, err
    assert not out.exists()


def test_ensemble_matches_rows_by_clip_not_by_order(run, second_run, tmp_path):
    """A run whose rows come in another order (as in a list written by hand) is averaged clip by clip."""
    other = tmp_path / "reversed"
    shutil.copytree(second_run, other, ignore=shutil.ignore_patterns("checkpoints"))
    for name in ("targets.npy", "predictions.npy"):
        np.save(other / name, np.load(other / name)[::-1])
    header, *rows = (other / "predictions_clips.csv").read_text().splitlines()
    (other / "predictions_clips.csv").write_text("\n".join([header, *rows[::-1]]) + "\n")
    assert main(["-q", "ensemble", str(run), str(other), "--bootstrap", "0", "--out", str(tmp_path / "ens")]) == 0
    expected = (np.load(run / "predictions.npy") + np.load(second_run / "predictions.npy")) / 2
    assert np.array_equal(np.load(tmp_path / "ens" / "predictions.npy"), expected)


def test_ensemble_of_runs_that_lost_different_eval_clips_averages_the_clips_both_scored(tiny_synth, tmp_path, caplog):
    """Run a could not read eval clip 5, run b clip 9: their rows differ from the 6th on."""
    import logging

    from atdr.data.datafile import read_datafile

    data = tmp_path / "data"
    shutil.copytree(tiny_synth, data, ignore=shutil.ignore_patterns("*.pack"))
    config = write_run_config(tmp_path / "run.yaml", data, TINY_TAL, data={"loader": "reference"}, train={"epochs": 1})
    wavs = [clip.wav for clip in read_datafile(data / "eval.json")]
    runs = {}
    for name, lost in (("a", 5), ("b", 9)):
        audio = Path(wavs[lost]).read_bytes()
        Path(wavs[lost]).write_bytes(b"RIFF, but no audio")
        runs[name] = tmp_path / name
        assert main(["-q", "train", "--config", str(config), "--out", str(runs[name]), "--set",
                     f"train.seed={len(runs)}"]) == 0
        Path(wavs[lost]).write_bytes(audio)
        listed = (runs[name] / "predictions_clips.csv").read_text().splitlines()
        assert listed == ["entry,wav"] + [f"{i},{wav}" for i, wav in enumerate(wavs) if i != lost]
    out = tmp_path / "ens"
    with caplog.at_level(logging.INFO):
        assert main(["ensemble", str(runs["a"]), str(runs["b"]), "--bootstrap", "0", "--out", str(out)]) == 0
    assert "ensemble: 2 of 24 eval clips left out: not every run could read them" in caplog.text
    both = [i for i in range(24) if i not in (5, 9)]
    a, b = np.load(runs["a"] / "predictions.npy"), np.load(runs["b"] / "predictions.npy")
    a_rows = [i for i in range(24) if i != 5]  # the clip of each row of a's predictions
    b_rows = [i for i in range(24) if i != 9]
    expected = np.stack([(a[a_rows.index(i)] + b[b_rows.index(i)]) / 2 for i in both])
    assert np.array_equal(np.load(out / "predictions.npy"), expected)
    targets = np.load(runs["a"] / "targets.npy")[[a_rows.index(i) for i in both]]
    assert np.array_equal(np.load(out / "targets.npy"), targets)
    assert (out / "predictions_clips.csv").read_text().splitlines()[1:] == [f"{i},{wavs[i]}" for i in both]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["left_out"] == [wavs[5], wavs[9]]
    assert metrics["ensemble"]["mAP"] == pytest.approx(sklearn_map(expected, np.load(out / "targets.npy")), abs=1e-6)


def test_ensemble_of_a_run_written_before_clip_lists_says_how_to_update_it(run, second_run, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(second_run, old)
    (old / "predictions_clips.csv").unlink()
    (old / "data.json").unlink()  # nor did an older atdr record the run's data
    assert main(["-q", "ensemble", str(run), str(old), "--out", str(tmp_path / "ens")]) == 2
    err = one_line_error(capsys.readouterr().err, "ensemble")
    assert f"{old} has no predictions_clips.csv" in err
    command = f"atdr train --config {old / 'config.yaml'} --out {old} --force"
    assert f"train it again with `{command}`" in err
    assert main(["-q", *command.split()[1:]]) == 0  # as it says
    assert (old / "predictions_clips.csv").read_text() == (second_run / "predictions_clips.csv").read_text()
    assert main(["-q", "ensemble", str(run), str(old), "--bootstrap", "0", "--out", str(tmp_path / "ens")]) == 0


def test_ensemble_of_one_run_is_a_one_line_error(run, tmp_path, capsys):
    assert main(["-q", "ensemble", str(run), "--out", str(tmp_path / "ens")]) == 2
    assert "at least two runs" in one_line_error(capsys.readouterr().err, "ensemble")
    assert not (tmp_path / "ens").exists()


def test_multilabel_reports_print_no_accuracy(run, second_run, tmp_path, caplog):
    """Top-1 accuracy means nothing for multi-label clips: not printed (it stays in metrics.json)."""
    import logging

    with caplog.at_level(logging.INFO):
        assert main(["evaluate", str(run), "--bootstrap", "0", "--out", str(tmp_path / "e")]) == 0
        assert main(["ensemble", str(run), str(second_run), "--bootstrap", "0", "--out", str(tmp_path / "ens")]) == 0
    lines = [r.getMessage() for r in caplog.records if "mAP " in r.getMessage()]
    assert len(lines) == 4 and all("mAUC" in line and "acc" not in line for line in lines), lines
    assert "acc" in json.loads((tmp_path / "e" / "metrics.json").read_text())["best"]


@pytest.mark.parametrize("workers", [0, 2])
def test_an_unreadable_clip_on_evaluate_data_is_one_line_naming_it_with_or_without_workers(run, tmp_path, capsys,
                                                                                          workers):
    datafile = Path(yaml.safe_load((run / "config.yaml").read_text())["data"]["eval"])
    entries = [{**e, "wav": str(datafile.parent / e["wav"])} for e in json.loads(datafile.read_text())["data"]]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"not a wav file" * 100)
    entries[1] = {**entries[1], "wav": str(corrupt)}
    bad = tmp_path / "eval.json"
    bad.write_text(json.dumps({"data": entries}))
    assert main(["-q", "evaluate", str(run), "--data", str(bad), "--workers", str(workers),
                 "--out", str(tmp_path / "e")]) == 2
    assert f"cannot read audio {corrupt}" in one_line_error(capsys.readouterr().err, "evaluate")
