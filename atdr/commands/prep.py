"""Build a json datafile from a folder of clips and segment list(s); account for every segment.

Reads segment lists (AudioSet's, with 3 comment lines, or with the plain header line
`YTID,start_seconds,end_seconds,positive_labels`), finds each segment's clip under --audio
(`<ytid>.<ext>`, or `<ytid>_<start>.<ext>` as downloaders name them, searched recursively; any
format soundfile decodes: wav, flac, ogg/vorbis, opus, mp3, aiff, au, caf, w64, at any sample
rate and channel count) and checks that it can be read (its header; with --verify every sample).
Writes the AST-style datafile with the usable clips, and two manifests beside it:
  OUT_missing.csv     segments without a file (AudioSet always has some), in the segment format
  OUT_unreadable.csv  segments whose file is there but cannot be used (unsupported format such as
                      .m4a, corrupt, empty), with the file and the problem
so that training and evaluation never meet them. A segment listed twice is kept once. A label
none of whose clips in the lists is readable is named in a warning.

Example:
  atdr prep --segments balanced_train_segments.csv --audio audio/ \\
            --labels class_labels_indices.csv --out data/train.json
"""

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--segments", action="extend", nargs="+", required=True, metavar="CSV",
                   help="segment list(s); several are merged (e.g. balanced + unbalanced)")
    p.add_argument("--audio", required=True, metavar="DIR", help="folder holding the clips (searched recursively)")
    p.add_argument("--labels", required=True, metavar="CSV", help="class_labels_indices.csv")
    p.add_argument("--out", required=True, metavar="JSON", help="datafile to write")
    p.add_argument("--missing", metavar="CSV", help="manifest of segments without a clip (default: OUT stem + _missing.csv)")
    p.add_argument("--unreadable", metavar="CSV",
                   help="manifest of segments whose clip cannot be read (default: OUT stem + _unreadable.csv)")
    p.add_argument("--verify", action="store_true", help="decode every clip fully instead of reading its header (slower)")
    p.add_argument("--workers", type=int, default=8, metavar="N", help="clips probed at once (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    from atdr.data.datafile import write_datafile
    from atdr.data.label_checks import unreadable_labels
    from atdr.data.labels import LabelSet
    from atdr.data.prep import index_audio, prepare, write_unreadable
    from atdr.data.segments import write_segments
    from atdr.errors import AtdrError

    labels = LabelSet.read(args.labels)
    result = prepare(args.segments, index_audio(args.audio), labels, verify=args.verify, workers=args.workers)
    out = Path(args.out)
    missing = Path(args.missing) if args.missing else out.with_name(f"{out.stem}_missing.csv")
    unreadable = Path(args.unreadable) if args.unreadable else out.with_name(f"{out.stem}_unreadable.csv")
    write_segments(missing, result.missing, title="Segments listed but not found on disk (atdr prep)")
    write_unreadable(unreadable, result.unreadable)
    if not result.clips:
        raise AtdrError(f"no usable clip under {args.audio}: {result.summary()} (see {missing} and {unreadable})")
    write_datafile(out, result.clips)
    log.info("%s: %s (see %s and %s)", out, result.summary(), missing, unreadable)
    lost = unreadable_labels(result)
    if lost:
        log.warning("warning: %s: %s: nothing to learn from if this is a training list, nothing to score if eval", out, lost)
    for note in result.conversions():
        log.info("note: %s when read", note)
