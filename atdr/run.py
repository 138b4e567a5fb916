"""Reading a finished (or running) run folder written by `atdr train`."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from atdr.atomic import atomic_path
from atdr.config import RunConfig, load_config
from atdr.data.labels import LabelSet
from atdr.errors import AtdrError

# A run's eval-set predictions: best epoch, checkpoint ensemble, weight averaging.
PREDICTIONS = {"best": "predictions.npy", "ensemble": "predictions_ensemble.npy", "wa": "predictions_wa.npy"}
# The eval clip of each of their rows (and of targets.npy's): clips that could not be read have none.
PREDICTION_CLIPS = "predictions_clips.csv"


class EvalClip(NamedTuple):
    """The clip of a prediction row: its entry in the eval datafile (from 0) and its audio file."""

    entry: int
    wav: str


def write_prediction_clips(folder: Path, clips: list[EvalClip]) -> None:
    """`folder/predictions_clips.csv`: a header `entry,wav`, then one row per prediction row, the
    audio file as an absolute path."""
    with atomic_path(folder / PREDICTION_CLIPS) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(EvalClip._fields)
        writer.writerows((clip.entry, os.path.abspath(clip.wav)) for clip in clips)


def read_prediction_clips(folder: Path) -> list[EvalClip]:
    """The clips of a finished run's prediction rows."""
    path = folder / PREDICTION_CLIPS
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise AtdrError(f"{folder} has no {PREDICTION_CLIPS} (the eval clip of each prediction row; an older atdr "
                        f"did not write it, nor the run's data): train it again with `atdr train --config "
                        f"{folder / 'config.yaml'} --out {folder} --force`") from None
    except OSError as e:
        raise AtdrError(f"cannot read {path}: {e.strerror}") from None
    try:
        if tuple(rows[0]) != EvalClip._fields:
            raise ValueError(f"header {rows[0]}")
        return [EvalClip(int(entry), wav) for entry, wav in rows[1:]]
    except (IndexError, ValueError) as e:
        raise AtdrError(f"{path}: not a list of eval clips written by atdr ({e})") from None


@dataclass(frozen=True)
class Run:
    path: Path
    config: RunConfig

    @property
    def labels(self) -> LabelSet:
        return LabelSet.read(self.config.data.labels)


def read_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise AtdrError(f"{path} is not a run folder (no config.yaml; create one with atdr train)")
    return Run(path, load_config(path / "config.yaml"))


def read_summary(folder: Path) -> dict:
    """A finished run's `summary.json`."""
    path = folder / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AtdrError(f"{folder}: no summary.json; is the run finished? (atdr train writes it at the end)") from None
    except (OSError, ValueError) as e:
        raise AtdrError(f"cannot read {path}: {e}") from None
