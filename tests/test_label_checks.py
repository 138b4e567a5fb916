"""Label sanity before training (atdr.data.label_checks at link, split, prep and train), and the
odd-file summaries of link, split, prep and pack on a workflow run's terminal."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from atdr.cli import main
from atdr.data.datafile import Clip, read_datafile, write_datafile
from atdr.data.label_checks import check_learnable, suspected_typos
from atdr.data.labels import LabelSet, audioset_labels
from atdr.data.segments import Segment, write_segments
from atdr.errors import AtdrError
from conftest import make_recordings, write_run_config
from test_own_recordings import readme_config
from test_workflow import snakemake

LINEAR = {"name": "linear", "params": {"hidden_dim": 16}}


def test_a_label_only_in_eval_stops_training_before_it_starts(tiny_synth, tmp_path, capsys):
    """The reporter's case: one eval clip whose label no training clip has scored mAP 1.000
    [1.000, 1.000] (rc 0); now a one-line error, before anything is packed or trained."""
    data = tmp_path / "data"
    shutil.copytree(tiny_synth, data, ignore=shutil.ignore_patterns("*.pack"))  # other tests' runs pack there
    labels = LabelSet.read(data / "class_labels_indices.csv")
    LabelSet((*labels.mids, "dgo"), (*labels.names, "dgo")).write(data / "class_labels_indices.csv")
    write_datafile(data / "eval.json", [Clip(read_datafile(data / "eval.json")[0].wav, ("dgo",))])
    config = write_run_config(tmp_path / "run.yaml", data, LINEAR, frontend="mel64", target_length=40,
                              train={"epochs": 1})
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("atdr train: error: label 'dgo' (1 in eval) has no readable training clip: a class "
                              "without one cannot be learnt"), err
    assert not (tmp_path / "run" / "summary.json").exists() and not (data / "train.pack").exists()


def test_a_scored_label_needs_a_training_clip_and_an_unscored_one_is_named():
    splits = {"train": [("dog",), ("dog", "cat")], "valid": [("bird",)], "eval": [("dog",), ("dgo",)]}
    with pytest.raises(AtdrError, match=r"^labels 'bird' \(1 in valid\), 'dgo' \(1 in eval\) have no readable training"):
        check_learnable(splits)
    splits = {"train": [("dog",), ("dog", "cat"), ("bird",)], "eval": [("dog",)]}
    assert check_learnable(splits) == ("labels 'bird' (1 in train), 'cat' (1 in train) have no eval clip: learnt "
                                       "but not scored (mAP skips them)")
    assert check_learnable({"train": [("dog",)], "eval": [("dog",)]}) is None


def test_labels_that_look_like_typos_are_named():
    counts = Counter({"dog": 40, "dgo": 1, "Dog": 2, "/m/0bt9lr": 40, "/m/0bt9Ir": 1, "/m/09x0R": 1,
                      "cat": 2, "car": 2, "cutlery": 1, "ab": 1, "/m/0chx_": 1})
    warnings = suspected_typos(counts)
    assert warnings == [
        "label '/m/09x0R' (1 clip) looks like a typo of '/m/09x0r' (Speech); as written it becomes a class of its own",
        "label '/m/0bt9Ir' (1 clip) looks like a typo of '/m/0bt9lr' (Dog, 40 clips); as written it becomes a class "
        "of its own",
        "label 'Dog' (2 clips) looks like a typo of 'dog' (40 clips); as written it becomes a class of its own",
        "label 'dgo' (1 clip) looks like a typo of 'dog' (40 clips); as written it becomes a class of its own",
    ]  # rare labels used as often as their neighbours (cat, car), short ones and AudioSet's own ids are not


def test_link_warns_about_a_typo_becoming_a_class(tmp_path, caplog):
    (tmp_path / "audio").mkdir()
    rows = [Segment(f"d{i}", 0, 1, ("/m/0bt9lr",)) for i in range(6)] + [Segment("t", 0, 1, ("/m/0bt9Ir",))]
    write_segments(tmp_path / "list.csv", rows)
    assert main(["link", str(tmp_path), str(tmp_path / "linked"), "--segments", "list.csv"]) == 0
    assert "/m/0bt9Ir" in LabelSet.read(tmp_path / "linked" / "class_labels_indices.csv").mids  # a class, but named:
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "warning: label '/m/0bt9Ir' (1 clip) looks like a typo of '/m/0bt9lr' (Dog, 6 clips); as written it becomes "
        "a class of its own"]


def test_prep_names_a_label_without_a_readable_clip(tmp_path, caplog):
    sf.write(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    (tmp_path / "b.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE not audio")
    write_segments(tmp_path / "list.csv", [Segment("a", 0, 1, ("dog",)), Segment("b", 0, 1, ("cat",)),
                                           Segment("c", 0, 1, ("cat",))])
    LabelSet.from_mids(["cat", "dog"]).write(tmp_path / "labels.csv")
    assert main(["prep", "--segments", str(tmp_path / "list.csv"), "--audio", str(tmp_path), "--labels",
                 str(tmp_path / "labels.csv"), "--out", str(tmp_path / "d.json")]) == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == (f"warning: {tmp_path / 'd.json'}: label 'cat' (2 listed) has no readable clip (e.g. c: no file): "
                       "nothing to learn from if this is a training list, nothing to score if eval")


@pytest.mark.slow
def test_a_workflow_run_shows_odd_files_and_label_warnings_on_the_terminal(tmp_path):
    """link, split, prep and pack write their summaries to their logs and to the terminal."""
    make_recordings(tmp_path / "recordings", n_clips=40)
    listing = tmp_path / "recordings" / "recordings.csv"
    first = listing.read_text().splitlines()[1]
    used = first.split(",", 3)[3].strip('"').split(",")[0]
    typo = used[:-1] + ("X" if used[-1] != "X" else "Y")
    assert typo not in audioset_labels().index
    shutil.copy(next((tmp_path / "recordings" / "audio").rglob("rec001.*")), tmp_path / "recordings" / "audio" / "t.wav")
    listing.write_text(listing.read_text() + f"t,0,1,{typo}\n")
    config = readme_config()
    config["datasets"]["mine"]["path"] = "recordings"
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results/mine/data/{split}.pack" for split in ("train", "valid", "eval")]
    result = snakemake(tmp_path, *targets, config=tmp_path / "mine.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    terminal = result.stdout + result.stderr
    name = audioset_labels().names[audioset_labels().index[used]]
    assert f"warning: label '{typo}' (1 clip) looks like a typo of '{used}' ({name}, " in terminal  # link
    assert "41 of 44 listed segments have a readable clip; 1 missing; 2 unreadable; 1 .m4a file present" in terminal  # split
    prepared = {split: read_datafile(tmp_path / f"results/mine/data/{split}.json") for split in ("train", "valid", "eval")}
    for split, clips in prepared.items():
        assert f"results/mine/data/{split}.json: {len(clips)} of " in terminal  # prep
        assert f"results/mine/data/{split}.pack: {len(clips)} clips (0 could not be decoded)" in terminal  # pack
    assert sum(len(c) for c in prepared.values()) == 41
    assert typo in {m for c in prepared["train"] for m in c.labels}  # its one clip in train, not scored:
    assert f"warning: label '{typo}' (1 in train) has no eval clip: learnt but not scored" in terminal  # split
