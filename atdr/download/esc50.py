"""ESC-50 (Piczak 2015) as the original's egs/esc50/prep_esc50.py prepares it.

The repository archive (checksum-verified), its 2000 5-s clips resampled once from 44.1 kHz to
16 kHz (the original uses sox; atdr its own resampler, the one that reads clips) and, in
AudioSet's layout under `<dest>` (prepared aside, moved into place whole: `atdr.download.corpus`):
- `audio/<clip>.wav` (16 kHz mono PCM), `meta/esc50.csv` (the official metadata);
- `class_labels_indices.csv`: the categories (50) in target order with the original's ids
  `/m/07rwj00` ... `/m/07rwj49` (its esc_class_labels_indices.csv);
- `fold1.csv` ... `fold5.csv`: the official cross-validation folds as segment lists. The
  original's fold k trains on the other four folds and is evaluated on fold k.
"""

from __future__ import annotations

import csv
import logging
import shutil
import warnings
from functools import partial
from pathlib import Path

from tqdm import tqdm

from atdr.data.audio import SAMPLE_RATE, AudioConversionWarning, load_audio, write_audio
from atdr.data.labels import LabelSet
from atdr.data.segments import Segment, write_segments
from atdr.download.addresses import ESC50_DIGEST, ESC50_URL, Digest
from atdr.download.corpus import download_corpus
from atdr.download.unpack import check_clip_id, unpack
from atdr.errors import AtdrError

log = logging.getLogger(__name__)

FOLDS = 5
MID = "/m/07rwj{:02d}"  # the original's dummy ids


def fold_lists() -> list[str]:
    return [f"fold{k}.csv" for k in range(1, FOLDS + 1)]


def download_esc50(dest: str | Path, *, url: str = ESC50_URL, digest: Digest | None = ESC50_DIGEST,
                   keep: bool = False, tries: int = 5, wait: float = 2.0, progress: bool = True) -> None:
    download_corpus("esc50", "ESC-50", dest, "ESC-50-master.zip", url, digest, partial(_prepare, progress=progress),
                    keep=keep, tries=tries, wait=wait, progress=progress)


def _prepare(archive: Path, unpacked: Path, out: Path, *, progress: bool) -> int:
    unpack(archive, unpacked)
    roots = [p.parent.parent for p in unpacked.glob("*/meta/esc50.csv")]
    if len(roots) != 1:
        raise AtdrError(f"{archive}: expected one folder with meta/esc50.csv (as ESC-50-master/), found {len(roots)}")
    root = roots[0]
    meta = root / "meta" / "esc50.csv"
    rows = _read_meta(meta)
    names = {}
    for row in rows:
        names.setdefault(row["target"], row["category"])
        if names[row["target"]] != row["category"]:
            raise AtdrError(f"{archive}: meta/esc50.csv: target {row['target']} is both {names[row['target']]!r} "
                            f"and {row['category']!r}")
    if sorted(names) != list(range(len(names))):
        raise AtdrError(f"{archive}: meta/esc50.csv: targets must be 0..{len(names) - 1} without gaps")
    labels = LabelSet(tuple(MID.format(t) for t in range(len(names))), tuple(names[t] for t in range(len(names))))

    seconds = {}
    with warnings.catch_warnings():  # resampling is the point here
        warnings.simplefilter("ignore", AudioConversionWarning)
        for row in tqdm(rows, desc="ESC-50 to 16 kHz", unit="clip", disable=None if progress else True):
            try:
                wave = load_audio(root / "audio" / row["filename"])
            except AtdrError as e:
                raise AtdrError(f"{archive}: audio/{row['filename']}: {e}") from None
            write_audio(out / "audio" / row["filename"], wave)
            seconds[row["filename"]] = round(len(wave) / SAMPLE_RATE, 3)
    for k in range(1, FOLDS + 1):
        segments = [Segment(Path(r["filename"]).stem, 0.0, seconds[r["filename"]], (labels.mids[r["target"]],))
                    for r in rows if r["fold"] == k]
        write_segments(out / f"fold{k}.csv", segments, title=f"ESC-50 fold {k} (atdr download esc50)")
    labels.write(out / "class_labels_indices.csv")
    (out / "meta").mkdir()
    shutil.copyfile(meta, out / "meta" / "esc50.csv")
    for name in ("LICENSE", "README.md"):
        if (root / name).is_file():
            shutil.copyfile(root / name, out / name)
    log.info("ESC-50: %d clips at 16 kHz, %d classes, folds in fold1.csv..fold%d.csv", len(rows), len(labels), FOLDS)
    return len(rows)


def _read_meta(path: Path) -> list[dict]:
    """Rows of meta/esc50.csv (filename, fold, target, category, ...), checked."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise AtdrError(f"cannot read {path}: {e.strerror}") from None
    if not rows or not {"filename", "fold", "target", "category"} <= set(rows[0]):
        raise AtdrError(f"{path}: expected the columns filename, fold, target, category")
    for i, row in enumerate(rows, start=2):
        try:
            row["fold"], row["target"] = int(row["fold"]), int(row["target"])
        except ValueError:
            raise AtdrError(f"{path}:{i}: fold and target must be integers") from None
        if not (1 <= row["fold"] <= FOLDS and row["target"] >= 0):
            raise AtdrError(f"{path}:{i}: fold {row['fold']} or target {row['target']} out of range")
        check_clip_id(Path(row["filename"]).stem, f"{path}:{i}")
        if Path(row["filename"]).name != row["filename"] or not row["filename"].endswith(".wav"):
            raise AtdrError(f"{path}:{i}: {row['filename']!r} is not a .wav file name")
    return rows
