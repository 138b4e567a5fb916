"""The workflow's download stage end to end, against a local HTTP server on 127.0.0.1: an
ESC-50-shaped corpus through the 5-fold DAG to the comparison table, a Speech-Commands-shaped one
selected on validation and reported on test, and the weights rule through the mirror setting."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from corpora import esc50_zip, speechcommands_tar
from test_workflow import ENV, planned, snakemake

from atdr.download.speechcommands import WORDS

TINY = {  # a CPU-sized model and schedule shared by both corpora
    "models": {"linear": {"model": {"name": "linear", "params": {"hidden_dim": 16}},
                          "data": {"frontend": "mel64", "mean": -30.0, "std": 20.0}}},  # fixed: no norm-stats jobs
    "run_defaults": {"optim": {"lr": 1e-3, "warmup_steps": 0, "milestones": [2]},
                     "train": {"epochs": 3, "batch_size": 8, "num_workers": 0}},
    "seeds": [0], "ensembles": {}, "bootstrap": 20,
}


def write_config(tmp_path, datasets: dict):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"datasets": datasets, **TINY}))
    return path


@pytest.mark.slow
def test_an_esc50_shaped_corpus_runs_the_five_fold_dag_to_the_table(http_server, tmp_path):
    rows = esc50_zip(http_server.root / "esc.zip")
    md5 = hashlib.md5((http_server.root / "esc.zip").read_bytes()).hexdigest()
    config = write_config(tmp_path, {"esc": {
        "source": "esc50", "path": str(tmp_path / "store" / "esc50"), "archive": {"url": http_server.url("esc.zip"), "md5": md5},
        "folds": [f"fold{k}.csv" for k in range(1, 6)], "target_length": {"mel64": 20}, "task": "singlelabel",
        "balanced_sampling": False, "run_overrides": {"train": {"loss": "ce"}},
    }})
    result = snakemake(tmp_path, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(http_server.requests_for("esc.zip")) == 1  # one download for the five folds
    for k in range(1, 6):
        eval_clips = json.loads((tmp_path / "results" / f"esc_fold{k}" / "data" / "eval.json").read_text())["data"]
        assert sorted(c["video_id"] for c in eval_clips) == sorted(r["filename"][:-4] for r in rows if r["fold"] == k)
        summary = json.loads((tmp_path / "results" / f"esc_fold{k}" / "linear" / "seed0" / "summary.json").read_text())
        assert summary["main_metric"] == "acc" and summary["selected_on"] == "eval"
    table = pd.read_csv(tmp_path / "results" / "comparison" / "config" / "table.csv")
    assert list(table.dataset) == ["esc"] and table.folds[0] == 5 and table.main_metric[0] == "acc"
    assert 0 <= table.acc[0] <= 1 and table.fold_std[0] >= 0
    header = (tmp_path / "results" / "comparison" / "config" / "table.md").read_text().splitlines()[0]
    assert "folds" in header and "fold std" in header and "acc" in header
    again = snakemake(tmp_path, "-n", config=config)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_a_speech_commands_shaped_corpus_selects_on_validation_and_reports_test(http_server, tmp_path):
    lists = speechcommands_tar(http_server.root / "sc.tar.gz", WORDS)
    sha = hashlib.sha256((http_server.root / "sc.tar.gz").read_bytes()).hexdigest()
    config = write_config(tmp_path, {"sc": {
        "source": "speechcommands", "path": str(tmp_path / "store" / "sc"),
        "archive": {"url": http_server.url("sc.tar.gz"), "sha256": sha},
        "train_segments": ["train_list.csv"], "valid_segments": ["validation_list.csv"],
        "eval_segments": ["testing_list.csv"], "target_length": {"mel64": 12}, "task": "singlelabel",
        "balanced_sampling": False, "run_overrides": {"augment": {"noise": True}, "train": {"loss": "bce"}},
    }})
    result = snakemake(tmp_path, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "results" / "sc" / "linear" / "seed0"
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["data"]["valid"] == "results/sc/data/valid.json" and resolved["train"]["loss"] == "bce"
    assert json.loads((run / "summary.json").read_text())["selected_on"] == "valid"
    assert np.load(run / "predictions.npy").shape == (len(lists["testing"]), len(WORDS))  # reported on test
    table = pd.read_csv(tmp_path / "results" / "comparison" / "config" / "table.csv")
    assert table.selected_on.tolist() == ["valid"]


def test_the_weights_rule_fetches_through_the_mirror(http_server, tmp_path, monkeypatch):
    served = http_server.root / "www.dropbox.com" / "s" / "ca0b1v2nlxzyeb4" / "audioset_10_10_0.4593.pth"
    served.parent.mkdir(parents=True)
    torch.save({"module.v.pos_embed": torch.zeros(1, 3, 4)}, served)
    monkeypatch.setitem(ENV, "ATDR_MIRROR", http_server.url(""))
    monkeypatch.setitem(ENV, "ATDR_CHECKPOINTS", str(tmp_path / "checkpoints"))
    target = tmp_path / "checkpoints" / "audioset_10_10_0.4593.pth"
    result = snakemake(tmp_path, str(target), config=write_config(tmp_path, {"esc": {
        "source": "esc50", "folds": ["fold1.csv", "fold2.csv"], "target_length": {"mel64": 20}}}))
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned(result) == {"pretrained_weights": 1}
    assert target.read_bytes() == served.read_bytes() and (target.parent / f"{target.name}.sha256").is_file()


@pytest.mark.slow
def test_audioset_from_youtube_through_the_workflow_to_datafiles(http_server, tmp_path, monkeypatch):
    """The official lists and class list through the mirror setting, the clips from local media;
    two datasets reading one list share its download job."""
    from test_youtube import IDS, media

    from atdr.data.segments import Segment, write_segments

    csv = http_server.root / "storage.googleapis.com" / "us_audioset" / "youtube_corpus" / "v1" / "csv"
    csv.mkdir(parents=True)
    (csv / "class_labels_indices.csv").write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/04rlf,"Music"\n')
    write_segments(csv / "balanced_train_segments.csv", [Segment(i, 1.0, 3.0, ("/m/09x0r",)) for i in IDS[:3]])
    write_segments(csv / "eval_segments.csv", [Segment(i, 0.0, 2.0, ("/m/04rlf",)) for i in IDS[2:]])
    (http_server.root / "media").mkdir()
    for ytid in IDS[1:]:  # IDS[0] is "removed"
        (http_server.root / "media" / f"{ytid}.wav").write_bytes(media(4.0))
    monkeypatch.setitem(ENV, "ATDR_MIRROR", http_server.url(""))
    youtube = {"source": "youtube", "path": str(tmp_path / "audioset"), "target_length": {"mel64": 20},
               "youtube": {"url_template": http_server.url("media/{ytid}.wav"), "min_fraction": 0.5},
               "train_segments": ["balanced_train_segments.csv"], "eval_segments": ["eval_segments.csv"]}
    config = write_config(tmp_path, {"as_a": youtube, "as_b": {**youtube, "balanced_sampling": False}})
    targets = [f"results/{d}/data/{s}.json" for d in ("as_a", "as_b") for s in ("train", "eval")]
    result = snakemake(tmp_path, *targets, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned(result) == {"download_youtube": 2, "link_download": 2, "datafile": 4}
    train = json.loads((tmp_path / "results" / "as_a" / "data" / "train.json").read_text())["data"]
    assert sorted(c["video_id"] for c in train) == sorted(IDS[1:3])
    missing = (tmp_path / "results" / "as_a" / "data" / "train_missing.csv").read_text()
    assert IDS[0] in missing
    manifest = pd.read_csv(tmp_path / "audioset" / "balanced_train_segments_manifest.csv")
    assert manifest.status.tolist() == ["unavailable", "ok", "ok"]
    log, = (tmp_path / "results" / "logs" / "downloads").glob("*/balanced_train_segments.csv.log")
    text = log.read_text()
    assert "got 2 of 3 clips (66.7% of the official list)" in text and "1 clip unavailable: HTTP 404" in text, text
