"""Clips holding NaN, infinite or absurdly large samples (a float WAV can) are unreadable clips
wherever audio is read: named and recorded by `atdr prep --verify`, `pack`, `norm-stats`, training on either data
path, `evaluate --data` and `tag`, never turned into NaN statistics or scores."""

import csv
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from atdr.cli import main
from atdr.data.audio import audio_info, load_audio
from atdr.data.datafile import Clip, read_datafile, write_datafile
from atdr.data.labels import LabelSet
from atdr.data.pack import PackedStore
from atdr.data.segments import Segment, write_segments
from atdr.errors import AtdrError
from conftest import TINY_TAL, write_run_config

NONFINITE = "holds NaN or infinite samples"
LOUD = 1e30  # finite in float32, but its features' power overflows


def problem(value: float) -> str:
    """What load_audio says of a clip whose loudest sample is `value`, after its path."""
    if math.isfinite(value):
        return f"its samples reach {abs(value):.3g} (full scale is 1; more than 1e+06 is not audio)"
    return f"it {NONFINITE}"


def spoil(path: str | Path, value: float, at: int = 100) -> None:
    """Rewrite a clip as a 32-bit float WAV whose sample `at` is `value` (NaN, infinite, LOUD)."""
    wave, rate = sf.read(str(path), dtype="float32")
    wave[at] = value
    sf.write(str(path), wave, rate, format="WAV", subtype="FLOAT")


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("stats_*", "*.pack"))
    return dst


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, LOUD, -1e7])
def test_load_audio_and_the_decoding_probe_refuse_nonfinite_or_absurd_samples(tmp_path, value):
    path = tmp_path / "clip.wav"
    sf.write(path, np.zeros(200_000, dtype=np.float32), 16000, subtype="FLOAT")
    spoil(path, value, at=150_000)  # in the third block the probe decodes
    with pytest.raises(AtdrError) as load:
        load_audio(path)
    with pytest.raises(AtdrError) as probe:
        audio_info(path, decode=True)
    assert str(load.value) == str(probe.value) == f"cannot read audio {path}: {problem(value)}"
    assert audio_info(path).frames == 200_000  # the header alone cannot tell


def test_float_clips_scaled_as_int16_still_read(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, np.full(1600, -32768.0, dtype=np.float32), 16000, subtype="FLOAT")
    assert load_audio(path).abs().max() == 32768


@pytest.mark.parametrize("method", ["exact", "original"])
def test_norm_stats_leave_nonfinite_clips_out_and_name_them(tiny_synth, tmp_path, caplog, method):
    data = copy_dataset(tiny_synth, tmp_path / "data")
    clips = read_datafile(data / "train.json")
    spoilt = {3: np.nan, 7: np.inf, 9: LOUD}
    for i, value in spoilt.items():
        spoil(clips[i].wav, value)
    args = ["norm-stats", "--frontend", "mel64", "--target-length", "40"]
    if method == "original":
        args += ["--method", "original", "--batch-size", "8"]
    with caplog.at_level(logging.INFO):
        assert main([*args, str(data / "train.json"), "--out", str(tmp_path / "stats.json")]) == 0
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert math.isfinite(stats["mean"]) and math.isfinite(stats["std"])
    assert stats["clips"] == 45 and stats["unreadable"] == [clips[i].wav for i in spoilt]
    skipped = [r.getMessage() for r in caplog.records if "skipping unreadable clip" in r.getMessage()]
    assert sorted(skipped) == sorted(f"skipping unreadable clip: cannot read audio {clips[i].wav}: {problem(value)}"
                                     for i, value in spoilt.items())
    assert "3 of 48 clips could not be read and are left out" in caplog.text
    if method == "exact":  # the statistics of the other clips, exactly
        write_datafile(tmp_path / "readable.json", [c for i, c in enumerate(clips) if i not in spoilt])
        assert main(["-q", *args, str(tmp_path / "readable.json"), "--out", str(tmp_path / "readable_stats.json")]) == 0
        readable = json.loads((tmp_path / "readable_stats.json").read_text())
        assert stats["mean"] == pytest.approx(readable["mean"], rel=1e-9)
        assert stats["std"] == pytest.approx(readable["std"], rel=1e-9)


def test_norm_stats_of_clips_none_of_which_can_be_read_is_a_one_line_error(tmp_path, capsys):
    sf.write(tmp_path / "a.wav", np.full(1600, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    write_datafile(tmp_path / "d.json", [Clip(str(tmp_path / "a.wav"), ("/m/a",))])
    assert main(["-q", "norm-stats", str(tmp_path / "d.json"), "--frontend", "mel64", "--out",
                 str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("atdr norm-stats: error: none of the 1 clips could be read"), err
    assert not (tmp_path / "s.json").exists()


def _three_clips(folder: Path) -> dict[str, Path]:
    """good.wav, nan.wav and inf.wav: float WAVs of 0.2 s, the last two spoilt."""
    paths = {}
    for name, value in (("good", None), ("nan", np.nan), ("inf", np.inf)):
        paths[name] = folder / f"{name}.wav"
        sf.write(paths[name], np.full(3200, 0.1, dtype=np.float32), 16000, subtype="FLOAT")
        if value is not None:
            spoil(paths[name], value)
    return paths


def test_prep_verify_lists_nonfinite_clips_as_unreadable(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    _three_clips(audio)
    write_segments(tmp_path / "s.csv", [Segment(name, 0, 0.2, ("/m/a",)) for name in ("good", "nan", "inf")])
    LabelSet.from_mids(["/m/a"]).write(tmp_path / "labels.csv")
    args = ["prep", "--segments", str(tmp_path / "s.csv"), "--audio", str(audio),
            "--labels", str(tmp_path / "labels.csv")]
    assert main(args + ["--out", str(tmp_path / "header.json")]) == 0
    assert len(read_datafile(tmp_path / "header.json")) == 3  # headers are fine
    assert main(args + ["--out", str(tmp_path / "verified.json"), "--verify"]) == 0
    assert [Path(c.wav).name for c in read_datafile(tmp_path / "verified.json")] == ["good.wav"]
    with open(tmp_path / "verified_unreadable.csv", newline="") as f:
        rows = {r["YTID"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == ["inf", "nan"]
    for name, row in rows.items():
        assert row["file"].endswith(f"{name}.wav")
        assert row["problem"] == f"cannot read audio {row['file']}: it {NONFINITE}"


def test_pack_reports_nonfinite_clips_as_undecodable(tmp_path):
    paths = _three_clips(tmp_path)
    write_datafile(tmp_path / "d.json", [Clip(str(p), ("/m/a",)) for p in paths.values()])
    assert main(["-q", "pack", str(tmp_path / "d.json")]) == 0
    store = PackedStore(tmp_path / "d.pack")
    assert store.read(0) is not None and store.read(1) is None and store.read(2) is None
    with open(tmp_path / "d_undecodable.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["wav"], r["error"]) for r in rows] == [
        (f"{name}.wav", f"cannot read audio {paths[name]}: it {NONFINITE}") for name in ("nan", "inf")]


@pytest.mark.parametrize("loader", ["reference", "packed"])
def test_training_skips_nonfinite_clips_and_names_them(tiny_synth, tmp_path, loader):
    data = copy_dataset(tiny_synth, tmp_path / "data")
    train, evaluation = read_datafile(data / "train.json"), read_datafile(data / "eval.json")
    spoil(train[3].wav, np.nan)
    spoil(train[7].wav, np.inf)
    spoil(train[9].wav, LOUD)
    spoil(evaluation[5].wav, -np.inf)
    config = write_run_config(tmp_path / "run.yaml", data, TINY_TAL, data={"loader": loader},
                              train={"wa_start": 1})
    assert main(["-q", "train", "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["unreadable"] == {"train": [train[3].wav, train[7].wav, train[9].wav], "eval": [evaluation[5].wav]}
    assert summary["clips"] == {"train": 45, "eval": 23}
    for name in ("predictions", "predictions_ensemble", "predictions_wa"):
        predictions = np.load(tmp_path / "run" / f"{name}.npy")
        assert predictions.shape == (23, 10) and np.isfinite(predictions).all(), name


def test_tag_and_evaluate_name_a_nonfinite_file(trained_run, tmp_path, capsys):
    paths = _three_clips(tmp_path)
    assert main(["-q", "tag", "--run", str(trained_run), str(paths["good"]), str(paths["nan"])]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"atdr tag: error: cannot read audio {paths['nan']}: it {NONFINITE}"
    assert captured.out.startswith(f"{paths['good']}\n") and str(paths["nan"]) not in captured.out

    eval_file = yaml.safe_load((trained_run / "config.yaml").read_text())["data"]["eval"]
    clips = read_datafile(eval_file)
    spoilt = tmp_path / "spoilt.wav"
    shutil.copy(clips[2].wav, spoilt)
    spoil(spoilt, np.inf)
    write_datafile(tmp_path / "eval.json", [clips[0], clips[1], Clip(str(spoilt), clips[2].labels)])
    assert main(["-q", "evaluate", str(trained_run), "--data", str(tmp_path / "eval.json"), "--bootstrap", "0",
                 "--out", str(tmp_path / "e")]) == 2
    assert capsys.readouterr().err.strip() == f"atdr evaluate: error: cannot read audio {spoilt}: it {NONFINITE}"
