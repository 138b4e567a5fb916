"""Build json datafiles from a folder of downloaded clips and AudioSet segment lists."""

from __future__ import annotations

import os
import re
from pathlib import Path

from atdr.data.datafile import Clip
from atdr.data.labels import LabelSet
from atdr.data.segments import Segment
from atdr.errors import AtdrError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
_START_SUFFIX = re.compile(r"^(?P<ytid>.+)_(?P<start>\d+(\.\d+)?)$")


def index_audio(folder: str | Path) -> dict[str, Path]:
    """Map clip ids to files under `folder` (recursive).

    A file `<ytid>.wav` is found as `<ytid>`; a file named with its start time, as AudioSet
    downloaders often do (`<ytid>_30.000.flac`, `<ytid>_30.wav`), as `<ytid>` and `<ytid>@30`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AtdrError(f"audio folder not found: {folder}")
    index: dict[str, Path] = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            stem, ext = os.path.splitext(name)
            if ext.lower() not in AUDIO_EXTENSIONS:
                continue
            path = Path(dirpath) / name
            index.setdefault(stem, path)
            m = _START_SUFFIX.match(stem)
            if m:
                index.setdefault(m["ytid"], path)
                index[f"{m['ytid']}@{float(m['start']):g}"] = path
    return index


def segments_to_clips(
    segments: list[Segment], audio: dict[str, Path], labels: LabelSet, source: str = "segments"
) -> tuple[list[Clip], list[Segment]]:
    """Datafile entries for the segments whose clip is on disk, and the segments that are not.

    Label ids must all be in `labels`.
    """
    clips, missing = [], []
    for seg in segments:
        unknown = [m for m in seg.labels if m not in labels.index]
        if unknown:
            raise AtdrError(f"{source}: segment {seg.ytid}: unknown label id {unknown[0]!r} (not in the class list)")
        path = audio.get(f"{seg.ytid}@{seg.start:g}") or audio.get(seg.ytid)
        if path is None:
            missing.append(seg)
        else:
            clips.append(Clip(str(path.resolve()), seg.labels, {"video_id": seg.ytid}))
    return clips, missing
