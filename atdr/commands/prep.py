"""Build a json datafile from a folder of clips and AudioSet segment list(s).

Reads official segment csvs (3 comment lines, then YTID, start, end, "label,label"), finds each
segment's clip under --audio (`<ytid>.wav`, or `<ytid>_<start>.wav/.flac` as downloaders name
them, searched recursively) and writes the AST-style datafile. Segments whose clip is not on disk
(AudioSet always has some) are listed in a manifest in the same segment format, and skipped.

Example:
  atdr prep --segments balanced_train_segments.csv --audio audio/ \\
            --labels class_labels_indices.csv --out data/train.json
"""

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--segments", action="append", required=True, metavar="CSV",
                   help="segment list; repeat to merge several (e.g. balanced + unbalanced)")
    p.add_argument("--audio", required=True, metavar="DIR", help="folder holding the clips (searched recursively)")
    p.add_argument("--labels", required=True, metavar="CSV", help="class_labels_indices.csv")
    p.add_argument("--out", required=True, metavar="JSON", help="datafile to write")
    p.add_argument("--missing", metavar="CSV", help="manifest of segments without a clip (default: OUT stem + _missing.csv)")


def run(args: argparse.Namespace) -> None:
    from atdr.data.datafile import write_datafile
    from atdr.data.labels import LabelSet
    from atdr.data.prep import index_audio, segments_to_clips
    from atdr.data.segments import read_segments, write_segments
    from atdr.errors import AtdrError

    labels = LabelSet.read(args.labels)
    audio = index_audio(args.audio)
    clips, missing = [], []
    for csv_path in args.segments:
        found, lost = segments_to_clips(read_segments(csv_path), audio, labels, source=csv_path)
        clips += found
        missing += lost
    out = Path(args.out)
    manifest = Path(args.missing) if args.missing else out.with_name(f"{out.stem}_missing.csv")
    write_segments(manifest, missing, title="Segments listed but not found on disk (atdr prep)")
    if not clips:
        raise AtdrError(f"none of the {len(missing)} listed clips is under {args.audio} (missing ones listed in {manifest})")
    write_datafile(out, clips)
    log.info("%s: %d clips; %d listed but missing on disk (see %s)", out, len(clips), len(missing), manifest)
