"""`atdr tag` from the command line: sliding windows on a real AudioSet clip, output files,
any rate and channel count, file names starting with `--`, and one-line errors."""

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from atdr.cli import main
from atdr.data.labels import LabelSet

ATDR = str(Path(sys.executable).parent / "atdr")
CLASSES = 10  # the tiny embedded dataset's class count


def _labels(run: Path) -> LabelSet:
    import yaml

    return LabelSet.read(yaml.safe_load((run / "config.yaml").read_text())["data"]["labels"])


def _printed(stdout: str) -> dict[str, list[tuple[float, str, str]]]:
    """stdout of `atdr tag` -> {clip header line: [(probability, display name, mid), ...]}."""
    clips: dict[str, list] = {}
    current = None
    for line in stdout.splitlines():
        if not line.startswith("  "):
            current = line
            clips[current] = []
            continue
        prob, rest = line.strip().split("  ", 1)
        name, mid = rest.rsplit("  (", 1)
        clips[current].append((float(prob), name, mid.rstrip(")")))
    return clips


def _write(path: Path, seconds: float, rate: int = 16000, channels: int = 1, seed: int = 0) -> Path:
    data = np.random.default_rng(seed).uniform(-0.3, 0.3, (round(seconds * rate), channels)).astype(np.float32)
    sf.write(str(path), data, rate)
    return path


@pytest.fixture(scope="module")
def real_clip(audioset_fixtures) -> Path:
    return audioset_fixtures / "--BfvyPmVMo.wav"


def test_long_real_clip_is_tagged_in_windows_and_scored_by_their_maximum(trained_run, real_clip, tmp_path, capsys):
    out = tmp_path / "tags.json"
    # --top-k above the class count keeps every class's score in the json (k = number of classes)
    assert main(["-q", "tag", "--run", str(trained_run), "--top-k", "100", "--out", str(out), "--", str(real_clip)]) == 0
    (result,) = json.loads(out.read_text())
    assert result["file"] == str(real_clip)
    windows = result["windows"]
    assert len(windows) > 1  # a 10 s clip and a model input of 1 s
    starts = [w["start_s"] for w in windows]
    assert starts[0] == 0.0 and np.allclose(np.diff(starts[:-1]), 0.5)  # default hop: half the 1 s window
    assert 0 < starts[-1] - starts[-2] <= 0.5 and 9.9 <= windows[-1]["end_s"] <= 10.0  # last window ends at the clip's end
    assert all(abs(w["end_s"] - w["start_s"] - 1.0) < 1e-6 for w in windows)

    def scores(top):
        assert len(top) == CLASSES
        return {t["mid"]: t["probability"] for t in top}

    clip = scores(result["top"])
    per_window = [scores(w["top"]) for w in windows]
    assert all(0.0 <= p <= 1.0 for p in clip.values())
    for mid, p in clip.items():
        values = [w[mid] for w in per_window]
        assert p == max(values), mid  # rounding to 6 digits is monotone, so the maximum survives it exactly
    assert any(clip[mid] > np.mean([w[mid] for w in per_window]) for mid in clip)  # windows do differ: not a mean
    assert [t["probability"] for t in result["top"]] == sorted(clip.values(), reverse=True)

    # printed: a header naming the clip and its windows, then the top labels with display names
    printed = _printed(capsys.readouterr().out)
    (header,) = printed
    assert header == f"{real_clip}  ({len(windows)} windows of 1 s)"
    labels = _labels(trained_run)
    assert [(p, n, m) for p, n, m in printed[header]] == [
        (round(t["probability"], 4), t["display_name"], t["mid"]) for t in result["top"]]
    assert all(labels.names[labels.index[m]] == n for _, n, m in printed[header])


def test_top_k_gives_k_lines_per_clip(trained_run, real_clip, tmp_path, capsys):
    short = _write(tmp_path / "short.wav", 2.0)
    assert main(["-q", "tag", "--run", str(trained_run), "--top-k", "3", "--", str(real_clip), str(short)]) == 0
    printed = _printed(capsys.readouterr().out)
    assert [h.split("  (")[0] for h in printed] == [str(real_clip), str(short)]
    for header, top in printed.items():
        assert len(top) == 3, header
        assert [p for p, _, _ in top] == sorted((p for p, _, _ in top), reverse=True)


def test_csv_output_has_clip_and_window_rows(trained_run, real_clip, tmp_path):
    out = tmp_path / "tags.csv"
    assert main(["-q", "tag", "--run", str(trained_run), "--top-k", str(CLASSES), "--out", str(out),
                 "--", str(real_clip)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"file", "window", "start_s", "end_s", "rank", "mid", "display_name", "probability"}
    assert {r["file"] for r in rows} == {str(real_clip)}
    by_window: dict[str, dict[str, float]] = {}
    for r in rows:
        by_window.setdefault(r["window"], {})[r["mid"]] = float(r["probability"])
    windows = [w for w in by_window if w != "clip"]
    assert "clip" in by_window and len(windows) > 1
    assert windows == [str(i) for i in range(len(windows))]
    assert all(len(scores) == CLASSES for scores in by_window.values())
    for mid, p in by_window["clip"].items():
        assert p == max(by_window[w][mid] for w in windows)
    clip_rows = [r for r in rows if r["window"] == "clip"]
    assert [int(r["rank"]) for r in clip_rows] == list(range(1, CLASSES + 1))
    assert float(clip_rows[0]["start_s"]) == 0.0 and 9.9 <= float(clip_rows[0]["end_s"]) <= 10.0


def test_out_with_another_extension_is_a_one_line_error(trained_run, tmp_path, capsys):
    clip = _write(tmp_path / "a.wav", 1.0)
    assert main(["-q", "tag", "--run", str(trained_run), "--out", str(tmp_path / "x.txt"), str(clip)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("atdr tag: error: ") and "x.txt" in err and "\n" not in err
    assert not (tmp_path / "x.txt").exists()


def test_stereo_44k_files_are_converted_and_the_notice_is_given_once(trained_run, tmp_path, caplog, capsys):
    a = _write(tmp_path / "a.wav", 1.5, rate=44100, channels=2, seed=1)
    b = _write(tmp_path / "b.wav", 2.5, rate=44100, channels=2, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # Python's default for UserWarning: once per message and place
        assert main(["-q", "tag", "--run", str(trained_run), "--top-k", "2", "--out", str(tmp_path / "t.json"),
                     str(a), str(b)]) == 0
    notes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("note: ")]
    assert sorted(notes) == ["note: downmixing 2-channel clips to mono", "note: resampling clips from 44100 Hz to 16000 Hz"]
    result = json.loads((tmp_path / "t.json").read_text())
    assert [r["file"] for r in result] == [str(a), str(b)]
    # 1.5 s -> 2 windows (0-1 s, then one aligned to the end), 2.5 s -> 4 (0, 0.5, 1, end-aligned)
    assert [len(r["windows"]) for r in result] == [2, 4]
    assert result[1]["windows"][-1]["end_s"] == pytest.approx(2.5, abs=0.03)
    printed = _printed(capsys.readouterr().out)
    assert len(printed) == 2 and all(len(top) == 2 for top in printed.values())


def test_installed_script_tags_names_starting_with_dashes_after_double_dash(trained_run, tmp_path):
    for name, seed in (("--first.wav", 3), ("--second.wav", 4)):
        _write(tmp_path / name, 1.2, rate=44100, channels=2, seed=seed)
    proc = subprocess.run([ATDR, "tag", "--run", str(trained_run), "--top-k", "2", "--", "--first.wav", "--second.wav"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    printed = _printed(proc.stdout)
    assert [h.split("  (")[0] for h in printed] == ["--first.wav", "--second.wav"]
    assert all(len(top) == 2 for top in printed.values())
    # the conversion notice reaches the user once for the two files, as a warning line
    assert proc.stderr.count("note: downmixing 2-channel clips to mono") == 1
    assert proc.stderr.count("note: resampling clips from 44100 Hz to 16000 Hz") == 1
    assert "Traceback" not in proc.stderr


@pytest.fixture
def not_a_bundle(trained_run, tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("these are not weights\n")
    state = tmp_path / "state.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, state)
    return {"text": text, "state": state, "last": trained_run / "checkpoints" / "last.pt"}


@pytest.mark.parametrize("case, expected", [
    ("text", "not a PyTorch checkpoint"),
    ("state", "is not an atdr model checkpoint"),
    ("last", "is not an atdr model checkpoint"),  # a training state, not a model bundle
    ("missing", "checkpoint not found"),
])
def test_bad_checkpoints_are_one_line_errors(not_a_bundle, tmp_path, capsys, case, expected):
    clip = _write(tmp_path / "a.wav", 1.0)
    path = not_a_bundle.get(case, tmp_path / "missing.pt")
    assert main(["-q", "tag", "--checkpoint", str(path), str(clip)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("atdr tag: error: ") and "\n" not in err
    assert str(path) in err and expected in err, err
    assert captured.out == ""


@pytest.mark.parametrize("case", ["not audio", "missing"])
def test_unreadable_audio_is_a_one_line_error(trained_run, tmp_path, capsys, case):
    bad = tmp_path / "bad.wav"
    if case == "not audio":
        bad.write_text("RIFF? no, just text\n")
    assert main(["-q", "tag", "--run", str(trained_run), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("atdr tag: error: cannot read audio ") and str(bad) in err and "\n" not in err


@pytest.mark.parametrize("seconds", [0.3, 0.0125])  # shorter than the 1 s window; the second than one frame
def test_clip_shorter_than_the_window_is_padded(trained_run, tmp_path, capsys, seconds):
    clip = _write(tmp_path / "short.wav", seconds)
    out = tmp_path / "short.json"
    assert main(["-q", "tag", "--run", str(trained_run), "--top-k", str(CLASSES), "--out", str(out), str(clip)]) == 0
    (result,) = json.loads(out.read_text())
    (window,) = result["windows"]
    assert window["start_s"] == 0.0 and window["end_s"] == pytest.approx(seconds, abs=1e-3)
    probs = [t["probability"] for t in result["top"]]
    assert len(probs) == CLASSES and all(0.0 <= p <= 1.0 for p in probs)
    assert probs == [t["probability"] for t in window["top"]]  # one window: clip score = window score
    printed = _printed(capsys.readouterr().out)
    assert list(printed) == [str(clip)]  # no "(N windows)" note for a single window


def test_every_readable_file_is_tagged_and_each_bad_one_reported(trained_run, tmp_path, capsys, caplog):
    good = [_write(tmp_path / "a.wav", 1.0), _write(tmp_path / "b.flac", 1.5, rate=22050, seed=1)]
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    (tmp_path / "phone.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A not decodable by libsndfile")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    bad = {tmp_path / "absent.wav": "file not found", folder: "a folder, not a file",
           tmp_path / "phone.m4a": "Format not recognised", tmp_path / "corrupt.wav": "cannot read audio"}
    out = tmp_path / "tags.json"
    clips = [good[0], *bad, good[1]]
    assert main(["-q", "tag", "--run", str(trained_run), "--top-k", "2", "--out", str(out), *map(str, clips)]) == 2
    captured = capsys.readouterr()
    assert [h.split("  (")[0] for h in _printed(captured.out)] == [str(good[0]), str(good[1])]
    assert [r["file"] for r in json.loads(out.read_text())] == [str(good[0]), str(good[1])]
    errors = [line for line in captured.err.splitlines() if line.startswith("atdr tag: error: ")]
    assert len(errors) == len(bad)
    for (path, reason), line in zip(bad.items(), errors):
        assert str(path) in line and reason in line, line
    assert "tagged 2 of 6 files; 4 could not be read" in caplog.text


@pytest.fixture(scope="module")
def mel_run(tiny_synth, tmp_path_factory) -> Path:
    """A tiny mel64 model with a 1 s input (40 frames of 25 ms)."""
    from conftest import write_run_config

    out = tmp_path_factory.mktemp("mel") / "linear"
    config = write_run_config(out.parent / "linear.yaml", tiny_synth, {"name": "linear", "params": {"hidden_dim": 16}},
                              frontend="mel64", target_length=40, train={"epochs": 1})
    assert main(["-q", "train", "--config", str(config), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("samples, windows", [(16000, 1), (16001, 2), (32000, 3), (8000, 1)])
def test_mel_windows_cover_the_clip_without_an_extra_one(mel_run, tmp_path, samples, windows):
    """mel64's centred STFT gives 41 frames for 1.000 s: still one 40-frame window (as in training)."""
    clip = _write(tmp_path / "clip.wav", samples / 16000)
    out = tmp_path / "tags.json"
    assert main(["-q", "tag", "--run", str(mel_run), "--out", str(out), str(clip)]) == 0
    (result,) = json.loads(out.read_text())
    assert len(result["windows"]) == windows
    assert result["windows"][-1]["end_s"] == pytest.approx(samples / 16000, abs=1e-3)
