"""Segment lists: AudioSet's (`balanced_train_segments.csv`, `eval_segments.csv`, ...) and your own.

Official format: three `#` header lines, then `YTID, start_seconds, end_seconds, "positive_labels"`
with a space after each comma and the label ids quoted and comma-separated. A plain csv header
line `YTID,start_seconds,end_seconds,positive_labels` is accepted instead of the comment lines, so
a list written by a spreadsheet or pandas reads as well.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from atdr.atomic import write_text
from atdr.errors import AtdrError

COLUMNS = ("YTID", "start_seconds", "end_seconds", "positive_labels")
EXPECTED = 'YTID, start_seconds, end_seconds, "label,label,..." (labels quoted when there are several)'


@dataclass(frozen=True)
class Segment:
    ytid: str
    start: float
    end: float
    labels: tuple[str, ...]


def _is_header(row: list[str]) -> bool:
    return tuple(c.strip().lstrip("#").strip().lower() for c in row) == tuple(c.lower() for c in COLUMNS)


def read_segments(path: str | Path) -> list[Segment]:
    """Every segment of a list; a malformed line is an error naming the file, the line and the
    format expected."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(enumerate(csv.reader(f, skipinitialspace=True), start=1))
    except OSError as e:
        raise AtdrError(f"cannot read segment list {path}: {e.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise AtdrError(f"{path}: not a text csv segment list ({e})") from None
    segments = []
    for line, row in rows:
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if not segments and _is_header(row):
            continue
        where = f"{path}:{line}"
        if len(row) != 4:
            hint = " (quote the labels when there are several)" if len(row) > 4 else ""
            raise AtdrError(f"{where}: expected 4 columns, {EXPECTED}; found {len(row)}{hint}")
        ytid, start, end, label_str = (c.strip() for c in row)
        try:
            start_s, end_s = float(start), float(end)
        except ValueError:
            raise AtdrError(f"{where}: start and end must be seconds, {EXPECTED}; found {start!r}, {end!r}") from None
        mids = tuple(m.strip() for m in label_str.split(",") if m.strip())
        if not ytid:
            raise AtdrError(f"{where}: empty YTID (the clip's file name without extension)")
        if not mids:
            raise AtdrError(f"{where}: segment {ytid} has no positive labels")
        segments.append(Segment(ytid, start_s, end_s, mids))
    if not segments:
        raise AtdrError(f"{path}: no segments (expected lines {EXPECTED})")
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
