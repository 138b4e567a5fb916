"""Use an AudioSet-layout folder you prepared: check it and link it into the workflow's results.

SOURCE must hold class_labels_indices.csv, the segment lists given with --segments (official
format) and the clips under audio/ (any sub-folders; `<ytid>.wav` or `<ytid>_<start>.flac`).
DEST gets symbolic links to them; nothing is copied.

Example:
  atdr link /data/audioset results/audioset/download \\
      --segments balanced_train_segments.csv unbalanced_train_segments.csv eval_segments.csv
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="folder with class_labels_indices.csv, segment lists and audio/")
    p.add_argument("dest", help="folder to create the links in")
    p.add_argument("--segments", nargs="+", required=True, metavar="CSV", help="segment list file names in SOURCE")


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from atdr.data.labels import LabelSet
    from atdr.data.segments import read_segments
    from atdr.errors import AtdrError

    source, dest = Path(args.source).resolve(), Path(args.dest)
    if not source.is_dir():
        raise AtdrError(f"dataset folder not found: {source} (set datasets.<name>.path in the config)")
    names = ["class_labels_indices.csv", *args.segments, "audio"]
    absent = [n for n in names if not (source / n).exists()]
    if absent:
        raise AtdrError(f"{source} lacks {', '.join(absent)} (expected: class_labels_indices.csv, the segment lists, audio/)")
    LabelSet.read(source / "class_labels_indices.csv")
    for name in args.segments:
        read_segments(source / name)
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = dest / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source / name, target_is_directory=name == "audio")
    log.info("linked %s into %s", source, dest)
