"""AST-style json datafiles: `{"data": [{"wav": "clip.wav", "labels": "/m/a,/m/b"}, ...]}`.

Relative `wav` paths are resolved against the datafile's folder, so a dataset folder can be moved
as a whole; the writer stores paths inside that folder relative to it. Extra keys per entry
(`video_id`, `image`, ...) are kept. Leading `#` comment lines, as in the original sample files,
are skipped.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from atdr.atomic import write_text
from atdr.data.labels import LabelSet
from atdr.errors import AtdrError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clip:
    """One datafile entry: an audio file and its label ids (mids)."""

    wav: str
    labels: tuple[str, ...]
    extra: dict = field(default_factory=dict, compare=False)


def _strip_comment_lines(text: str) -> tuple[str, int]:
    """Drop leading lines starting with '#'; return the rest and how many lines were dropped."""
    lines = text.splitlines(keepends=True)
    n = 0
    while n < len(lines) and (lines[n].lstrip().startswith("#") or not lines[n].strip()):
        n += 1
    return "".join(lines[n:]), n


def read_datafile(path: str | Path, labels: LabelSet | None = None, check_files: bool = True) -> list[Clip]:
    """Read and validate a datafile.

    With `labels`, every label id must be in the class list; with `check_files`, every audio file
    must exist. Any problem raises `AtdrError` naming the file and the entry. Entries that repeat
    an audio file are kept (a repeat counts twice in training and in scores) and reported.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise AtdrError(f"cannot read datafile {path}: {e.strerror}") from None
    body, skipped = _strip_comment_lines(text)
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as e:
        raise AtdrError(f"{path}:{e.lineno + skipped}:{e.colno}: malformed json: {e.msg}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise AtdrError(f'{path}: expected an object with a "data" list of clips')
    if not doc["data"]:
        raise AtdrError(f"{path}: the dataset is empty (no entries in \"data\")")

    root = path.parent
    clips, missing = [], []
    for i, entry in enumerate(doc["data"]):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict):
            raise AtdrError(f"{where}: expected an object with 'wav' and 'labels'")
        wav, label_str = entry.get("wav"), entry.get("labels")
        if not isinstance(wav, str) or not wav:
            raise AtdrError(f"{where}: missing 'wav' (path of the audio file)")
        if not isinstance(label_str, str) or not label_str.strip():
            raise AtdrError(f"{where} ({wav}): missing 'labels' (comma-separated label ids)")
        mids = tuple(m.strip() for m in label_str.split(",") if m.strip())
        if labels is not None:
            unknown = [m for m in mids if m not in labels.index]
            if unknown:
                raise AtdrError(f"{where} ({wav}): unknown label id {unknown[0]!r} (not in the class list)")
        resolved = wav if os.path.isabs(wav) else str(root / wav)
        if check_files and not os.path.isfile(resolved):
            missing.append((i, resolved))
        extra = {k: v for k, v in entry.items() if k not in ("wav", "labels")}
        clips.append(Clip(resolved, mids, extra))
    if missing:
        i, wav = missing[0]
        more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise AtdrError(f"{path}: entry {i}: audio file not found: {wav}{more}")
    repeated = {wav: n for wav, n in Counter(os.path.normpath(c.wav) for c in clips).items() if n > 1}
    if repeated:
        wav, n = next(iter(repeated.items()))
        log.warning("%s: %d audio file(s) appear in more than one entry (%s: %d times); each entry counts in training "
                    "and in the scores", path, len(repeated), wav, n)
    return clips


def write_datafile(path: str | Path, clips: list[Clip]) -> None:
    """Write clips as an AST-style datafile; paths under the datafile's folder become relative."""
    path = Path(path)
    root = path.parent.resolve()
    data = []
    for clip in clips:
        wav = Path(clip.wav).resolve()  # clips' paths are absolute or relative to the working directory
        if wav.is_relative_to(root):
            wav = wav.relative_to(root)
        data.append({**clip.extra, "wav": str(wav), "labels": ",".join(clip.labels)})
    write_text(path, json.dumps({"data": data}, indent=1) + "\n")
