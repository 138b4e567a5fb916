"""A run is keyed on its data as on its config: after an edit of what it reads (a label, an eval
clip added or removed, a clip's audio replaced under the same name), `atdr train` on the same
folder is a new run: refused with one line naming what changed, or with --force (the workflow)
started over, ending exactly where a fresh run in a new folder does."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from atdr.cli import main
from atdr.data.datafile import read_datafile, write_datafile
from atdr.data.pack import PackedStore
from conftest import write_run_config
from test_train import TIMING, copy_dataset, one_line_error

LINEAR = {"name": "linear", "params": {"hidden_dim": 16}}


@pytest.fixture
def run(tiny_synth, tmp_path):
    """A finished 2-epoch run on a copy of the tiny dataset (packed path), and its train command."""
    data = copy_dataset(tiny_synth, tmp_path / "data")
    config = write_run_config(tmp_path / "run.yaml", data, LINEAR, frontend="mel64", target_length=40)
    args = ["-q", "train", "--config", str(config), "--out", str(tmp_path / "run")]
    assert main(args) == 0
    return tmp_path / "run", data, args


def same_run(a: Path, b: Path) -> None:
    """Two run folders with the same results (wall-clock columns aside)."""
    for name in ("predictions", "predictions_ensemble", "targets"):
        assert np.array_equal(np.load(a / f"{name}.npy"), np.load(b / f"{name}.npy")), name
    pd.testing.assert_frame_equal(pd.read_csv(a / "metrics.csv").drop(columns=TIMING),
                                  pd.read_csv(b / "metrics.csv").drop(columns=TIMING))
    best = [torch.load(run / "checkpoints" / "best.pt", weights_only=False)["state_dict"] for run in (a, b)]
    assert all(torch.equal(best[0][k], best[1][k]) for k in best[0])


def relabel_first_clip(data: Path) -> None:
    clips = read_datafile(data / "train.json")
    clips[0] = type(clips[0])(clips[0].wav, ("/m/01v_m0",) if clips[0].labels != ("/m/01v_m0",) else ("/m/0chx_",))
    write_datafile(data / "train.json", clips)


def drop_eval_clip(data: Path) -> None:
    write_datafile(data / "eval.json", read_datafile(data / "eval.json")[:-1])


def add_eval_clip(data: Path) -> None:
    write_datafile(data / "eval.json", read_datafile(data / "eval.json") + read_datafile(data / "train.json")[:1])


@pytest.mark.parametrize("edit, changed, eval_clips", [
    (relabel_first_clip, "train.json", 24), (drop_eval_clip, "eval.json", 23), (add_eval_clip, "eval.json", 25)],
    ids=["a-label-changed", "an-eval-clip-removed", "an-eval-clip-added"])
def test_edited_data_is_refused_without_force_and_a_fresh_run_with_it(run, tmp_path, capsys, edit, changed,
                                                                      eval_clips):
    out, data, args = run
    before = np.load(out / "predictions.npy")
    edit(data)
    assert main(["-q", "pack", str(data / changed)]) == 0  # as the workflow's pack rule does
    capsys.readouterr()
    assert main(args) == 2
    err = one_line_error(capsys.readouterr().err)
    assert f"{out} holds a run on other data ({data / changed} changed since it started)" in err and "--force" in err
    assert np.array_equal(np.load(out / "predictions.npy"), before)  # untouched

    assert main(args + ["--force"]) == 0
    assert np.load(out / "predictions.npy").shape == (eval_clips, 10)
    fresh = tmp_path / "fresh"
    assert main([*args[:-1], str(fresh)]) == 0
    same_run(out, fresh)
    assert json.loads((out / "data.json").read_text()) == json.loads((fresh / "data.json").read_text())


def test_a_last_pt_written_on_other_data_is_not_resumed(run, tmp_path, capsys):
    """last.pt carries the data it was trained on, as it carries its config."""
    out, data, args = run
    original = (data / "train.json").read_text()
    relabel_first_clip(data)
    assert main([*args[:-1], str(tmp_path / "other")]) == 0
    (data / "train.json").write_text(original)
    (out / "checkpoints" / "last.pt").write_bytes((tmp_path / "other" / "checkpoints" / "last.pt").read_bytes())
    (out / "summary.json").unlink()
    capsys.readouterr()
    assert main(args) == 2
    err = one_line_error(capsys.readouterr().err)
    assert (f"last.pt was written for a run on other data ({data / 'train.json'} changed since it started), not "
            "this run: delete it" in err)


def test_a_clip_replaced_under_its_name_repacks_the_store_and_makes_a_new_run(run, capsys, caplog):
    out, data, args = run
    clip = read_datafile(data / "train.json")[5].wav
    wave, rate = sf.read(clip, dtype="int16")
    sf.write(clip, np.roll(wave, 4000), rate, subtype="PCM_16")  # same size and name, other content
    capsys.readouterr()
    assert main(args) == 2
    err = one_line_error(capsys.readouterr().err)
    assert f"holds a run on other data ({data / 'train.pack'} changed since it started)" in err
    assert f"{clip} changed since it was packed" in caplog.text
    assert np.array_equal(PackedStore(data / "train.pack").read(5), np.roll(wave, 4000))
    assert main(args + ["--force"]) == 0


def test_a_clip_touched_but_unchanged_keeps_the_run(run, caplog):
    """Packed again (its file's time changed), the store holds the same clips: the run is the same."""
    out, data, args = run
    clip = read_datafile(data / "eval.json")[0].wav
    os.utime(clip, ns=(os.stat(clip).st_atime_ns, os.stat(clip).st_mtime_ns + 10**9))
    (out / "summary.json").unlink()
    assert main(args[1:]) == 0
    assert f"{clip} changed since it was packed" in caplog.text
    assert "epoch 1/" not in caplog.text  # finished from last.pt, nothing trained again


def test_on_the_reference_path_a_replaced_clip_makes_a_new_run(tiny_synth, tmp_path, capsys):
    data = copy_dataset(tiny_synth, tmp_path / "data")
    config = write_run_config(tmp_path / "run.yaml", data, LINEAR, frontend="mel64", target_length=40,
                              data={"loader": "reference"}, train={"epochs": 1})
    args = ["-q", "train", "--config", str(config), "--out", str(tmp_path / "run")]
    assert main(args) == 0
    clip = read_datafile(data / "eval.json")[3].wav
    wave, rate = sf.read(clip, dtype="int16")
    sf.write(clip, wave[::-1], rate, subtype="PCM_16")
    capsys.readouterr()
    assert main(args) == 2
    err = one_line_error(capsys.readouterr().err)
    assert f"holds a run on other data (the audio files of {data / 'eval.json'} changed since it started)" in err


def test_a_run_folder_without_a_record_of_its_data_is_not_taken_for_this_run(trained_run, tmp_path, capsys):
    """A folder trained before runs recorded their data (no data.json) may hold a run on other data."""
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    (out / "data.json").unlink()
    capsys.readouterr()
    assert main(["-q", "train", "--config", str(out / "config.yaml"), "--out", str(out)]) == 2
    assert f"{out} holds a run whose data was not recorded: pass --force" in one_line_error(capsys.readouterr().err)
