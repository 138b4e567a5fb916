"""Use a folder of your own (or AudioSet's) recordings: check it and link it into the workflow's results.

SOURCE holds the segment lists given with --segments and the clips under audio/ (any
sub-folders; `<ytid>.<ext>` or `<ytid>_<start>.<ext>`), and optionally class_labels_indices.csv.
DEST gets symbolic links to them; nothing is copied. Without a class list, DEST gets one built
from the labels the segment lists use (with AudioSet's display names for AudioSet's ids). With a
class list whose classes are not all used (AudioSet's full list for a few of its labels), says
how many classes have no clip: `atdr tag` scores them anyway, mAP skips them. A label that looks
like a typo of another (used by one or two clips, one edit from a label used three times as
often or from an AudioSet id) is named in a warning.

Example:
  atdr link /data/audioset results/audioset/download \\
      --segments balanced_train_segments.csv unbalanced_train_segments.csv eval_segments.csv
"""

import argparse
import logging

log = logging.getLogger(__name__)

CLASS_LIST = "class_labels_indices.csv"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="folder with the segment lists, audio/ and optionally class_labels_indices.csv")
    p.add_argument("dest", help="folder to create the links in")
    p.add_argument("--segments", nargs="+", required=True, metavar="CSV", help="segment list file names in SOURCE")


def run(args: argparse.Namespace) -> None:
    from collections import Counter
    from pathlib import Path

    from atdr.data.label_checks import suspected_typos
    from atdr.data.labels import LabelSet, labels_for
    from atdr.data.segments import read_segments
    from atdr.errors import AtdrError

    source, dest = Path(args.source).resolve(), Path(args.dest)
    if not source.is_dir():
        raise AtdrError(f"dataset folder not found: {source} (set datasets.<name>.path in the config)")
    names = [*args.segments, "audio"]
    absent = [n for n in names if not (source / n).exists()]
    if absent:
        raise AtdrError(f"{source} lacks {', '.join(absent)} (expected: the segment lists, audio/, "
                        f"optionally {CLASS_LIST})")
    used = Counter(m for name in args.segments for s in read_segments(source / name) for m in s.labels)
    given = (source / CLASS_LIST).is_file()
    dest.mkdir(parents=True, exist_ok=True)
    for name in names + [CLASS_LIST]:
        link = dest / name
        if link.is_symlink() or link.exists():
            link.unlink()
    if given:
        labels = LabelSet.read(source / CLASS_LIST)
        unknown = sorted(set(used) - set(labels.mids))
        if unknown:
            raise AtdrError(f"{source / CLASS_LIST} lacks label id {unknown[0]!r} used in the segment lists"
                            f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}")
        (dest / CLASS_LIST).symlink_to(source / CLASS_LIST)
        unused = len(labels) - len(used)
        if unused:
            log.warning("warning: %d of the %d classes in %s have no clip in the segment lists: atdr tag scores "
                        "them (the model never saw one) and mAP skips them; list only your %d classes to train "
                        "on those alone", unused, len(labels), source / CLASS_LIST, len(used))
    else:
        labels = labels_for(used)
        labels.write(dest / CLASS_LIST)
        log.info("no %s in %s: built one of the %d labels the segment lists use", CLASS_LIST, source, len(labels))
    for name in names:
        (dest / name).symlink_to(source / name, target_is_directory=name == "audio")
    log.info("linked %s into %s", source, dest)
    for typo in suspected_typos(used):
        log.warning("warning: %s", typo)
