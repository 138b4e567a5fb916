"""AudioSet segment lists (`balanced_train_segments.csv`, `eval_segments.csv`, ...).

Official format: three `#` header lines, then `YTID, start_seconds, end_seconds, "positive_labels"`
with a space after each comma and the label ids quoted and comma-separated.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from atdr.atomic import write_text
from atdr.errors import AtdrError


@dataclass(frozen=True)
class Segment:
    ytid: str
    start: float
    end: float
    labels: tuple[str, ...]


def read_segments(path: str | Path) -> list[Segment]:
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            lines = [line for line in f if line.strip() and not line.lstrip().startswith("#")]
    except OSError as e:
        raise AtdrError(f"cannot read segment list {path}: {e.strerror}") from None
    segments = []
    for row in csv.reader(lines, skipinitialspace=True):
        if len(row) != 4:
            raise AtdrError(f"{path}: segment {row[:1]}: expected 4 columns (YTID, start, end, labels), found {len(row)}")
        ytid, start, end, label_str = row
        try:
            start_s, end_s = float(start), float(end)
        except ValueError:
            raise AtdrError(f"{path}: segment {ytid}: start/end are not numbers: {start!r}, {end!r}") from None
        mids = tuple(m.strip() for m in label_str.split(",") if m.strip())
        if not mids:
            raise AtdrError(f"{path}: segment {ytid}: no positive labels")
        segments.append(Segment(ytid, start_s, end_s, mids))
    if not segments:
        raise AtdrError(f"{path}: no segments")
    return segments


def write_segments(path: str | Path, segments: list[Segment], title: str = "Segments csv created by atdr") -> None:
    """Write segments in the official format, header counts included."""
    n_labels = len({m for s in segments for m in s.labels})
    n_positive = sum(len(s.labels) for s in segments)
    n_ytids = len({s.ytid for s in segments})
    lines = [
        f"# {title}",
        f"# num_ytids={n_ytids}, num_segs={len(segments)}, num_unique_labels={n_labels}, num_positive_labels={n_positive}",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    lines += [f'{s.ytid}, {s.start:.3f}, {s.end:.3f}, "{",".join(s.labels)}"' for s in segments]
    write_text(path, "\n".join(lines) + "\n")
