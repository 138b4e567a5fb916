"""Build json datafiles from a folder of clips and segment lists, accounting for every segment.

Each listed segment ends up in exactly one place: the datafile (its clip is on disk and
readable), the missing manifest (no file for it) or the unreadable manifest (a file is there, but
in a format atdr cannot decode, corrupt or empty).
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from atdr.atomic import atomic_path
from atdr.data.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioInfo, audio_info
from atdr.data.datafile import Clip
from atdr.data.labels import LabelSet
from atdr.data.segments import COLUMNS, Segment, read_segments
from atdr.errors import AtdrError

log = logging.getLogger(__name__)

_START_SUFFIX = re.compile(r"^(?P<ytid>.+)_(?P<start>\d+(\.\d+)?)$")


@dataclass
class AudioIndex:
    """Clip ids found under a folder: `<ytid>` and, for files named with their start time as
    AudioSet downloaders do (`<ytid>_30.000.flac`), also `<ytid>@30`."""

    readable: dict[str, Path] = field(default_factory=dict)  # in a format atdr decodes
    unsupported: dict[str, Path] = field(default_factory=dict)  # any other extension

    def find(self, segment: Segment) -> tuple[Path | None, bool]:
        """The segment's file and whether its format is supported; (None, False) if absent."""
        for files, supported in ((self.readable, True), (self.unsupported, False)):
            path = files.get(f"{segment.ytid}@{segment.start:g}") or files.get(segment.ytid)
            if path is not None:
                return path, supported
        return None, False


def index_audio(folder: str | Path) -> AudioIndex:
    """Index every file under `folder` (recursive) by clip id."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AtdrError(f"audio folder not found: {folder}")
    index = AudioIndex()
    for dirpath, _, files in os.walk(folder, followlinks=True):
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if name.startswith("."):
                continue
            found = index.readable if ext.lower() in AUDIO_EXTENSIONS else index.unsupported
            path = Path(dirpath) / name
            found.setdefault(stem, path)
            m = _START_SUFFIX.match(stem)
            if m:
                found.setdefault(m["ytid"], path)
                found[f"{m['ytid']}@{float(m['start']):g}"] = path
    return index


@dataclass(frozen=True)
class Unreadable:
    """A listed segment whose file is there but cannot be used."""

    segment: Segment
    file: str
    problem: str


@dataclass
class Prepared:
    clips: list[Clip] = field(default_factory=list)
    missing: list[Segment] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    duplicates: list[Segment] = field(default_factory=list)  # listed again after a first time (dropped)
    formats: Counter = field(default_factory=Counter)  # (sample rate, channels) of the clips kept

    @property
    def unusable(self) -> set[Segment]:
        """The listed segments without a readable clip (missing or unreadable)."""
        return {*self.missing, *(u.segment for u in self.unreadable)}

    def summary(self) -> str:
        """What was kept and what not, in one line."""
        listed = len(self.clips) + len(self.missing) + len(self.unreadable) + len(self.duplicates)
        parts = [f"{len(self.clips)} of {listed} listed segments have a readable clip",
                 f"{len(self.missing)} missing", f"{len(self.unreadable)} unreadable"]
        unsupported = Counter(Path(u.file).suffix.lower() or "(no extension)" for u in self.unreadable
                              if u.problem.startswith("unsupported format"))
        parts += [f"{n} {ext} file{'s' * (n > 1)} present but not a supported format" for ext, n in sorted(unsupported.items())]
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicate{'s' * (len(self.duplicates) > 1)} dropped "
                         f"(first: {self.duplicates[0].ytid} at {self.duplicates[0].start:g} s)")
        return "; ".join(parts)

    def conversions(self) -> list[str]:
        """The conversions reading the kept clips involves (resampling, downmixing), counted."""
        notes = []
        rates = Counter()
        for (rate, _), n in self.formats.items():
            rates[rate] += n
        for rate, n in sorted(rates.items()):
            if rate != SAMPLE_RATE:
                notes.append(f"{n} clip{'s' * (n > 1)} at {rate} Hz will be resampled to {SAMPLE_RATE} Hz")
        multi = sum(n for (_, channels), n in self.formats.items() if channels > 1)
        if multi:
            notes.append(f"{multi} clip{'s' * (multi > 1)} with more than one channel will be downmixed to mono")
        return notes


def prepare(segment_lists: list[str | Path], audio: AudioIndex, labels: LabelSet | None, verify: bool = False,
            workers: int = 8, progress: bool = True) -> Prepared:
    """Sort every segment of the lists into datafile clips, missing and unreadable ones.

    Every clip found is probed: its header is read (with `verify`, every sample is decoded too).
    Label ids must all be in `labels` (when given). A segment listed twice (same id and start)
    is kept once.
    """
    result = Prepared()
    seen: set[tuple[str, float]] = set()
    candidates: list[tuple[Segment, Path]] = []
    for source in segment_lists:
        for seg in read_segments(source):
            if labels is not None:
                unknown = [m for m in seg.labels if m not in labels.index]
                if unknown:
                    raise AtdrError(f"{source}: segment {seg.ytid}: unknown label id {unknown[0]!r} (not in the class list)")
            if (seg.ytid, seg.start) in seen:
                result.duplicates.append(seg)
                continue
            seen.add((seg.ytid, seg.start))
            path, supported = audio.find(seg)
            if path is None:
                result.missing.append(seg)
            elif not supported:
                result.unreadable.append(Unreadable(seg, str(path), f"unsupported format {path.suffix or '(no extension)'} "
                                                    f"(atdr reads {', '.join(AUDIO_EXTENSIONS)})"))
            else:
                candidates.append((seg, path))

    def probe(path: Path) -> AudioInfo | str:
        try:
            return audio_info(path, decode=verify)
        except AtdrError as e:
            return str(e)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        probes = pool.map(probe, (path for _, path in candidates))
        for (seg, path), info in tqdm(zip(candidates, probes), total=len(candidates), unit="clip",
                                      desc="decoding clips" if verify else "reading clip headers",
                                      disable=None if progress else True):
            if isinstance(info, str):
                result.unreadable.append(Unreadable(seg, str(path), info))
            else:
                result.formats[info.sample_rate, info.channels] += 1
                result.clips.append(Clip(str(path.resolve()), seg.labels, {"video_id": seg.ytid}))
    return result


def write_unreadable(path: str | Path, unreadable: list[Unreadable]) -> None:
    """The unreadable-clips manifest: the segment, its file and the problem, one per row."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*COLUMNS, "file", "problem"])
        for u in unreadable:
            s = u.segment
            writer.writerow([s.ytid, f"{s.start:.3f}", f"{s.end:.3f}", ",".join(s.labels), u.file, u.problem])
