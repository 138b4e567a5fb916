"""The data commands from the command line: help, a full run, one-line errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from atdr.cli import COMMANDS, main
from atdr.data.datafile import read_datafile


def test_every_command_has_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert "usage: atdr " + name in capsys.readouterr().out


def test_synth_prep_weights_norm_stats_pipeline(tmp_path, capsys):
    raw = tmp_path / "raw"
    assert main(["synth", str(raw), "--train", "12", "--eval", "4", "--seconds", "0.5", "--classes", "4"]) == 0
    # Remove two clips: prep must list them as missing and go on.
    gone = sorted((raw / "audio" / "balanced_train").glob("*.wav"))[:2]
    for p in gone:
        p.unlink()
    data = tmp_path / "data"
    assert main(["prep", "--segments", str(raw / "balanced_train_segments.csv"), "--audio", str(raw / "audio"),
                 "--labels", str(raw / "class_labels_indices.csv"), "--out", str(data / "train.json")]) == 0
    assert len(read_datafile(data / "train.json")) == 10
    missing = (data / "train_missing.csv").read_text().splitlines()
    assert len(missing) == 5 and {m.split(",")[0] for m in missing[3:]} == {p.stem for p in gone}

    assert main(["weights", str(data / "train.json"), "--labels", str(raw / "class_labels_indices.csv")]) == 0
    assert np.loadtxt(data / "train_weight.csv").shape == (10,)

    assert main(["norm-stats", str(data / "train.json"), "--frontend", "mel64", "--target-length", "20",
                 "--out", str(data / "stats.json")]) == 0
    stats = json.loads((data / "stats.json").read_text())
    assert stats["frontend"] == "mel64" and stats["target_length"] == 20 and stats["std"] > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["weights", "nope.json", "--labels", "nope.csv"], "cannot read label csv nope.csv"),
        (["norm-stats", "x.json", "--frontend", "mfcc", "--out", "s.json"], "unknown front-end 'mfcc'"),
        (["synth", "out", "--train", "0"], "--train and --eval must be at least 1"),
        (["prep", "--segments", "s.csv", "--audio", "nowhere", "--labels", "l.csv", "--out", "o.json"], "cannot read label csv"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"atdr {argv[0]}: error: ") and message in err[0]


def test_console_script_and_file_names_starting_with_dashes(tmp_path, tiny_synth):
    """The installed `atdr` program; a datafile named like an AudioSet id (`--...`) after `--`."""
    shutil.copy(tiny_synth / "train.json", tmp_path / "--BfvyPmVMo.json")
    for wav in (tiny_synth / "audio").rglob("*.wav"):
        dest = tmp_path / wav.relative_to(tiny_synth)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, dest)
    atdr = shutil.which("atdr", path=str(Path(sys.executable).parent))
    proc = subprocess.run([atdr, "weights", "--labels", str(tiny_synth / "class_labels_indices.csv"), "--",
                           "--BfvyPmVMo.json"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "--BfvyPmVMo_weight.csv").read_text().splitlines()) == 48
