"""The class list: AudioSet's `class_labels_indices.csv` (index,mid,display_name).

AudioSet's own list (527 classes; Gemmeke et al. 2017, CC BY 4.0) ships with atdr as
`audioset_class_labels_indices.csv`: a class list built from the labels your segment lists use
takes its display names (and order) from it where the ids are AudioSet's.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from atdr.atomic import write_text
from atdr.errors import AtdrError

HEADER = ("index", "mid", "display_name")


@dataclass(frozen=True)
class LabelSet:
    """Classes in index order: `mids[i]` is the id (e.g. "/m/09x0r") of output `i`."""

    mids: tuple[str, ...]
    names: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.mids) != len(self.names):
            raise ValueError("mids and names differ in length")
        object.__setattr__(self, "index", {mid: i for i, mid in enumerate(self.mids)})
        if len(self.index) != len(self.mids):
            raise ValueError("duplicate mids")

    def __len__(self) -> int:
        return len(self.mids)

    def encode(self, mids: list[str] | tuple[str, ...]) -> np.ndarray:
        """Multi-hot float32 vector for a list of mids (all must be known)."""
        target = np.zeros(len(self), dtype=np.float32)
        target[[self.index[m] for m in mids]] = 1.0
        return target

    @classmethod
    def from_mids(cls, mids: list[str]) -> LabelSet:
        """A class list without display names (they default to the ids)."""
        return cls(tuple(mids), tuple(mids))

    @classmethod
    def read(cls, path: str | Path) -> LabelSet:
        """Read an `index,mid,display_name` csv; indices must be 0..n-1 (any row order)."""
        path = Path(path)
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
        except OSError as e:
            raise AtdrError(f"cannot read label csv {path}: {e.strerror}") from None
        if not rows or tuple(c.strip() for c in rows[0]) != HEADER:
            raise AtdrError(f"{path}: expected the header 'index,mid,display_name'")
        entries: dict[int, tuple[str, str]] = {}
        for line, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != 3:
                raise AtdrError(f"{path}:{line}: expected 3 columns, found {len(row)} (quote names that contain commas)")
            try:
                idx = int(row[0])
            except ValueError:
                raise AtdrError(f"{path}:{line}: index {row[0]!r} is not an integer") from None
            if idx in entries:
                raise AtdrError(f"{path}:{line}: index {idx} appears twice")
            entries[idx] = (row[1].strip(), row[2])
        if not entries:
            raise AtdrError(f"{path}: no classes")
        if sorted(entries) != list(range(len(entries))):
            raise AtdrError(f"{path}: indices must be 0..{len(entries) - 1} without gaps")
        mids, names = zip(*(entries[i] for i in range(len(entries))))
        if len(set(mids)) != len(mids):
            dup = next(m for m in mids if mids.count(m) > 1)
            raise AtdrError(f"{path}: mid {dup} appears twice")
        return cls(tuple(mids), tuple(names))

    def write(self, path: str | Path) -> None:
        # As the official file: names always quoted, ids and indices bare.
        lines = [",".join(HEADER)]
        for i, (mid, name) in enumerate(zip(self.mids, self.names)):
            quoted = name.replace('"', '""')
            lines.append(f'{i},{mid},"{quoted}"')
        write_text(path, "\n".join(lines) + "\n")


@cache
def audioset_labels() -> LabelSet:
    """AudioSet's 527 classes, as shipped with atdr."""
    return LabelSet.read(Path(__file__).with_name("audioset_class_labels_indices.csv"))


def labels_for(mids: Iterable[str]) -> LabelSet:
    """A class list of exactly these label ids. Ids that are AudioSet's get its display names and
    come first in AudioSet's order; any others follow sorted, named by their id."""
    audioset = audioset_labels()
    mids = set(mids)
    known = sorted((m for m in mids if m in audioset.index), key=audioset.index.get)
    own = sorted(mids - set(known))
    return LabelSet(tuple(known + own), tuple([audioset.names[audioset.index[m]] for m in known] + own))
