"""A disk that cannot take the outputs (full from the start, read-only), for real: a small tmpfs.
Whichever command meets it ends with one line naming the file and the cause (exit 2), never a
traceback, and leaves no half-written file."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest

from conftest import TINY_TAL, on_a_small_disk, write_run_config

ATDR = str(Path(sys.executable).parent / "atdr")
FULL = "free some space or write the outputs elsewhere"


def _commands(data: Path, config: Path, disk: Path) -> dict[str, tuple[list[str], Path]]:
    """Commands writing to `disk`, and the file each must name."""
    labels = str(data / "class_labels_indices.csv")
    return {
        "synth": (["synth", str(disk / "synth"), "--train", "4", "--eval", "2"],
                  disk / "synth" / "class_labels_indices.csv"),
        "prep": (["prep", "--segments", str(data / "eval_segments.csv"), "--audio", str(data / "audio" / "eval"),
                  "--labels", labels, "--out", str(disk / "eval.json")], disk / "eval_missing.csv"),
        "norm-stats": (["norm-stats", str(data / "eval.json"), "--frontend", "kaldi128", "--target-length", "100",
                        "--out", str(disk / "stats.json")], disk / "stats.json"),
        "pack": (["pack", str(data / "eval.json"), "--out", str(disk / "eval.pack")], disk / "eval.pack"),
        "train": (["train", "--config", str(config), "--out", str(disk / "run")], disk / "run" / "train.log"),
        "train --restarts": (["train", "--config", str(config), "--out", str(disk / "run"), "--restarts", "1"],
                             disk / "run" / "train.log"),
    }


@pytest.fixture
def config(tiny_synth, tmp_path) -> Path:
    return write_run_config(tmp_path / "run.yaml", tiny_synth, TINY_TAL, train={"epochs": 1})


@pytest.mark.parametrize("command", ["synth", "prep", "norm-stats", "pack", "train", "train --restarts"])
def test_a_disk_full_from_the_start_is_one_line_naming_the_file(tiny_synth, config, tmp_path, command):
    disk = tmp_path / "disk"
    argv, written = _commands(tiny_synth, config, disk)[command]
    proc, left = on_a_small_disk(disk, [ATDR, "-q", *argv], full=True)
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert re.fullmatch(rf"atdr {argv[0]}: error: no space left on device: {re.escape(str(written))} "
                        rf"\((about \d+\.\d MB needed; )?{FULL}\)", line), line
    assert left == []  # nothing half-written


@pytest.mark.parametrize("command", ["synth", "norm-stats", "train"])
def test_a_read_only_disk_is_one_line_naming_the_place(tiny_synth, config, tmp_path, command):
    disk = tmp_path / "disk"
    argv, _ = _commands(tiny_synth, config, disk)[command]
    proc, _ = on_a_small_disk(disk, [ATDR, "-q", *argv], read_only=True)
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"atdr {argv[0]}: error: ") and str(disk) in line and "read-only file system" in line.lower()


def test_a_download_onto_a_full_disk_is_one_line_naming_its_folder(http_server, tmp_path):
    archive = http_server.root / "esc50.zip"
    archive.write_bytes(bytes(300_000))
    dest = tmp_path / "disk" / "esc50"
    proc, left = on_a_small_disk(tmp_path / "disk", [
        ATDR, "-q", "download", "esc50", str(dest), "--url", http_server.url("esc50.zip"),
        "--sha256", hashlib.sha256(archive.read_bytes()).hexdigest(), "--tries", "1"], full=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"atdr download: error: no space left on device: {dest} ({FULL})"], proc.stderr
    assert left == []
