"""Your own recordings through the whole workflow, as the README's "Your own recordings" shows.

A folder built in the test: clips in wav, flac, ogg/vorbis, opus and mp3 at 8-96 kHz, mono and
stereo, in sub-folders; one segment list with a plain csv header and no class list; one listed
clip absent, one corrupt, one .m4a. Two datasets on it: `mine` splits the list (train, valid,
eval); `mine_lists` gives train and eval lists. Then prep -> split -> train -> evaluate ->
ensemble -> compare through Snakemake, `atdr tag` on the raw files, and edits of the lists.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from atdr.data.datafile import read_datafile
from atdr.data.labels import LabelSet
from atdr.data.segments import read_segments
from conftest import TINY_TAL, make_recordings
from test_workflow import ENV, ROOT, planned, snakemake

README = (ROOT / "README.md").read_text()
SPLITS = ("train", "valid", "eval")


def listed_in(manifest: Path) -> list:
    """The segments of a missing-clips manifest (it may hold none)."""
    return read_segments(manifest) if manifest.read_text().count("\n") > 3 else []


def outputs_of(dry: subprocess.CompletedProcess) -> list[str]:
    """The output files of every job a dry run plans."""
    return [f for line in re.findall(r"^\s+output: (.+)$", dry.stdout, re.M) for f in line.split(", ")]


def readme_config() -> dict:
    """The worked config of the README's "Your own recordings" section."""
    section = README.split("## Your own recordings", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "the README's 'Your own recordings' section has no yaml config"
    return yaml.safe_load(block[1])


def test_the_readme_config_is_a_valid_workflow_config(tmp_path):
    config = readme_config()
    folder = Path(config["datasets"]["mine"]["path"])
    (tmp_path / folder / "audio").mkdir(parents=True)
    (tmp_path / "my-recordings.yaml").write_text(yaml.safe_dump(config))
    dry = snakemake(tmp_path, "-n", config=tmp_path / "my-recordings.yaml")
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = planned(dry)
    assert jobs["split"] == 1 and jobs["datafile"] == 3 and jobs["link_folder"] == 1
    assert "results/comparison/my-recordings/table.md" in dry.stdout


@pytest.fixture(scope="module")
def own(tmp_path_factory) -> Path:
    """The finished workflow on a folder of recordings (a couple of minutes on 2 cores)."""
    work = tmp_path_factory.mktemp("own")
    make_recordings(work / "recordings", n_clips=60)
    rows = (work / "recordings" / "recordings.csv").read_text().splitlines()
    (work / "recordings" / "train.csv").write_text("\n".join(rows[:46]) + "\n")  # header and 45 clips
    (work / "recordings" / "eval.csv").write_text("\n".join(rows[:1] + rows[46:]) + "\n")
    config = readme_config()
    config["datasets"]["mine"].update(path="recordings", target_length={"mel64": 40})
    config["datasets"]["mine_lists"] = {"source": "folder", "path": "recordings", "train_segments": ["train.csv"],
                                        "eval_segments": ["eval.csv"], "target_length": {"mel64": 40}}
    config["models"] = {"linear": {"model": {"name": "linear", "params": {"hidden_dim": 32}}, "data": {"frontend": "mel64"}},
                        "crnn": {"model": TINY_TAL, "data": {"frontend": "mel64"}}}
    config["ensembles"] = {"both": ["linear", "crnn"]}
    config["run_defaults"] = {"optim": {"warmup_steps": 0, "milestones": []},
                              "train": {"epochs": 2, "batch_size": 16, "num_workers": 0}}
    config["bootstrap"] = 20
    (work / "mine.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(work, config=work / "mine.yaml")
    assert result.returncode == 0, result.stderr[-4000:]
    return work


@pytest.mark.slow
def test_every_listed_segment_is_accounted_for(own):
    listed = {s.ytid: s for s in read_segments(own / "recordings" / "recordings.csv")}
    data = own / "results" / "mine" / "data"
    split = {name: read_segments(data / f"{name}_segments.csv") for name in SPLITS}
    assert sorted(s.ytid for part in split.values() for s in part) == sorted(listed)  # a partition
    labels = LabelSet.read(own / "results" / "mine" / "download" / "class_labels_indices.csv")
    assert labels.names[labels.index["/m/01v_m0"]] == "Sine wave"  # built, with AudioSet's names
    assert {m for s in split["train"] for m in s.labels} == set(labels.mids)  # every label in train
    accounted = {}
    for name in SPLITS:
        for clip in read_datafile(data / f"{name}.json", labels):
            accounted[clip.extra["video_id"]] = "datafile"
        for seg in listed_in(data / f"{name}_missing.csv"):
            accounted[seg.ytid] = "missing"
        with open(data / f"{name}_unreadable.csv", newline="") as f:
            for row in csv.DictReader(f):
                accounted[row["YTID"]] = row["problem"]
    assert sorted(accounted) == sorted(listed)
    assert accounted["absent"] == "missing"
    assert accounted["phone"].startswith("unsupported format .m4a") and "cannot read audio" in accounted["corrupt"]
    assert sum(v == "datafile" for v in accounted.values()) == 60


@pytest.mark.slow
def test_runs_select_on_valid_and_the_table_counts_the_clips_used(own):
    data = own / "results" / "mine" / "data"
    used = {name: len(read_datafile(data / f"{name}.json")) for name in SPLITS}
    summary = json.loads((own / "results" / "mine" / "linear" / "seed0" / "summary.json").read_text())
    assert summary["selected_on"] == "valid" and summary["clips"] == used
    assert json.loads((own / "results" / "mine_lists" / "crnn" / "seed0" / "summary.json").read_text())["selected_on"] == "eval"
    table = pd.read_csv(own / "results" / "comparison" / "mine" / "table.csv")
    mine = table[table.dataset == "mine"].set_index("model")
    assert list(mine.index[-1:]) == ["both"]  # the ensemble after the models
    assert (mine.loc["linear", ["train_clips", "valid_clips", "eval_clips"]].tolist()
            == [used["train"], used["valid"], used["eval"]])
    assert mine.loc["both", "eval_clips"] == used["eval"]
    assert set(table[table.dataset == "mine_lists"].selected_on.dropna()) == {"eval"}
    md = (own / "results" / "comparison" / "mine" / "table.md").read_text()
    assert "valid clips" in md and "| acc " not in md.splitlines()[0]


@pytest.mark.slow
def test_tag_the_raw_recordings(own):
    files = sorted(p for p in (own / "recordings" / "audio").rglob("*") if p.is_file())
    out = own / "tags.json"
    proc = subprocess.run([str(Path(sys.executable).parent / "atdr"), "tag", "--run",
                           str(own / "results" / "mine" / "crnn" / "seed0"), "--top-k", "3", "--out", str(out),
                           "--", *map(str, files)], capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 2  # two files could not be read
    tagged = json.loads(out.read_text())
    assert len(tagged) == len(files) - 2 == 60
    errors = [line for line in proc.stderr.splitlines() if line.startswith("atdr tag: error: ")]
    assert len(errors) == 2 and any("corrupt.wav" in e for e in errors) and any("phone.m4a" in e for e in errors)
    assert proc.stderr.count("note: resampling clips from 96000 Hz") == 1


@pytest.mark.slow
def test_editing_a_list_reruns_what_it_reaches_and_nothing_else(own):
    """Last in this module: it edits the recordings folder."""
    train = own / "recordings" / "train.csv"
    text = train.read_text()
    train.write_text(text)  # newer, same content: nothing to do
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(snakemake(own, "-n", config=own / "mine.yaml"))

    lines = text.splitlines()
    train.write_text("\n".join(lines[:5] + lines[6:]) + "\n")  # one row deleted
    dry = snakemake(own, "-n", config=own / "mine.yaml")
    jobs = planned(dry)
    assert jobs == {"datafile": 1, "pack": 1, "weights": 1, "norm_stats": 1, "train": 2, "evaluate": 2, "ensemble": 1,
                    "compare": 1, "all": 1}, jobs
    outputs = outputs_of(dry)
    assert "results/mine_lists/data/train.json" in outputs and not any(o.startswith("results/mine/") for o in outputs)

    train.write_text(text)
    recordings = own / "recordings" / "recordings.csv"
    rows = recordings.read_text().splitlines()
    rows[3] = re.sub(r',"[^"]*"$|,[^,]*$', ',"/m/0chx_"', rows[3])  # one clip's labels changed
    recordings.write_text("\n".join(rows) + "\n")
    dry = snakemake(own, "-n", config=own / "mine.yaml")
    jobs = planned(dry)
    assert jobs["split"] == 1 and jobs["datafile"] == 3 and jobs["train"] == 2 and "link_folder" not in jobs, jobs
    assert not any(o.startswith("results/mine_lists/") for o in outputs_of(dry))

    rows[4] = re.sub(r',"[^"]*"$|,[^,]*$', ',"/m/0chx_,my_new_label"', rows[4])  # a label no clip had
    recordings.write_text("\n".join(rows) + "\n")
    dry = snakemake(own, "-n", config=own / "mine.yaml")
    jobs = planned(dry)
    assert jobs["link_folder"] == 1 and "results/mine/download/class_labels_indices.csv" in outputs_of(dry)
    assert jobs["train"] == 2 and not any(o.startswith("results/mine_lists/") for o in outputs_of(dry))


@pytest.mark.slow
def test_edited_lists_and_a_replaced_recording_retrain_the_runs_that_read_them(tmp_path):
    """The walk of a user who edits their data and runs snakemake again: a label changed and a
    clip added, then a recording replaced under its name. Each time the datafiles, stores and the
    run are made again, and the run is a new one (not its old last.pt finished on the new data)."""
    make_recordings(tmp_path / "recordings", n_clips=24)
    folder = tmp_path / "recordings"
    rows = (folder / "recordings.csv").read_text().splitlines()
    (folder / "train.csv").write_text("\n".join(rows[:17]) + "\n")  # header and 16 clips
    (folder / "eval.csv").write_text("\n".join(rows[:1] + rows[17:]) + "\n")  # 8 clips and the 3 bad ones
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({
        "datasets": {"mine": {"source": "folder", "path": "recordings", "train_segments": ["train.csv"],
                              "eval_segments": ["eval.csv"], "target_length": {"mel64": 40}}},
        "models": {"linear": {"model": {"name": "linear", "params": {"hidden_dim": 16}}, "data": {"frontend": "mel64"}}},
        "ensembles": {}, "seeds": [0], "bootstrap": 20,
        "run_defaults": {"optim": {"warmup_steps": 0, "milestones": []},
                         "train": {"epochs": 1, "batch_size": 8, "num_workers": 0}}}))
    run, data = tmp_path / "results" / "mine" / "linear" / "seed0", tmp_path / "results" / "mine" / "data"
    target = "results/mine/linear/seed0/summary.json"  # the run (the table and figures would only add time)
    result = snakemake(tmp_path, target, config=config)
    assert result.returncode == 0, result.stderr[-4000:]

    def state() -> tuple[np.ndarray, bytes]:
        return np.load(run / "predictions.npy"), (run / "checkpoints" / "best.pt").read_bytes()

    predictions, best = state()
    assert predictions.shape[0] == 8

    # One training label changed, one eval clip added (its file and its row).
    train = [row.split(",", 3) for row in (folder / "train.csv").read_text().splitlines()]
    other = next(labels for *_, labels in train[2:] if labels != train[1][3])
    train[1][3] = other
    (folder / "train.csv").write_text("".join(",".join(row) + "\n" for row in train))
    wav = next((folder / "audio").rglob("rec001.*"))
    (wav.parent / f"added{wav.suffix}").write_bytes(wav.read_bytes())
    with open(folder / "eval.csv", "a") as f:
        f.write(f"added,0,1,{other}\n")
    result = snakemake(tmp_path, target, config=config)
    assert result.returncode == 0, result.stderr[-4000:]
    edited, edited_best = state()
    assert edited.shape[0] == 9 and edited_best != best
    assert "held a run on other data" in (run / "train.log").read_text()
    assert len(read_datafile(data / "eval.json")) == 9

    # A recording replaced under its name: nothing Snakemake watches changed but the file.
    clip = read_datafile(data / "train.json")[0].wav
    wave, rate = sf.read(clip, dtype="float32")
    sf.write(clip, np.roll(wave, len(wave) // 2, axis=0), rate)
    jobs = planned(snakemake(tmp_path, target, "-n", config=config))
    assert {"datafile", "pack", "train"} <= set(jobs), jobs
    result = snakemake(tmp_path, target, config=config)
    assert result.returncode == 0, result.stderr[-4000:]
    replaced, replaced_best = state()
    assert replaced_best != edited_best and not np.array_equal(replaced, edited)
    again = snakemake(tmp_path, target, "-n", config=config)
    assert "Nothing to be done" in again.stdout + again.stderr
