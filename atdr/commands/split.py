"""Split segment list(s) into train, valid and eval lists by a hash of each clip: stable under edits.

For your own recordings listed in one segment list (or several, merged): writes
OUT/train_segments.csv, OUT/valid_segments.csv and OUT/eval_segments.csv (AudioSet's format),
holding about 1 - valid - eval, valid and eval of the segments. Each clip's list follows from a
hash of its id, start and the seed, so adding clips to the list moves none already there, and
removing some moves none of the others; every label's share in each list is about right on many
clips (binomial: not exact on few). First every clip is looked up under --audio and checked as
`atdr prep` does; every label with a readable clip gets one in train (a readable clip of a label
whose clips all fell elsewhere is moved there), a label without any readable clip is an error,
and labels without an eval clip (not scored) are named. Then run `atdr prep` on each list.

Example:
  atdr split my_segments.csv --audio my-recordings/audio --valid 0.1 --eval 0.2 --seed 0 --out data/
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("segments", nargs="+", metavar="CSV", help="segment list(s) to split (merged first)")
    p.add_argument("--audio", required=True, metavar="DIR", help="folder holding the clips (searched recursively)")
    p.add_argument("--valid", type=float, default=0.1, metavar="FRACTION",
                   help="share of the validation list; 0 for none (default: %(default)s)")
    p.add_argument("--eval", type=float, default=0.2, metavar="FRACTION", help="share of the eval list (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clips' hash (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for {train,valid,eval}_segments.csv")
    p.add_argument("--verify", action="store_true", help="decode every clip fully instead of reading its header (slower)")
    p.add_argument("--workers", type=int, default=8, metavar="N", help="clips probed at once (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from atdr.data.label_checks import check_learnable, unreadable_labels
    from atdr.data.prep import index_audio, prepare
    from atdr.data.segments import read_segments, write_segments
    from atdr.data.split import split_segments
    from atdr.errors import AtdrError

    segments = [s for path in args.segments for s in read_segments(path)]
    prepared = prepare(args.segments, index_audio(args.audio), None, verify=args.verify, workers=args.workers)
    log.info("%s: %s", " ".join(args.segments), prepared.summary())
    lost = unreadable_labels(prepared)
    if lost:
        raise AtdrError(f"{lost}: fix or remove those clips")
    readable = set(segments) - prepared.unusable
    subsets = split_segments(segments, args.valid, args.eval, args.seed, readable)
    for name, subset in subsets.items():
        write_segments(Path(args.out) / f"{name}_segments.csv", subset,
                       title=f"{name} split of {len(segments)} segments by atdr split (seed {args.seed})")
    unscored = check_learnable({name: [s.labels for s in subset if s in readable] for name, subset in subsets.items()})
    log.info("%s: %s of %d segments", args.out, ", ".join(f"{len(v)} {k}" for k, v in subsets.items()), len(segments))
    if unscored:
        log.warning("warning: %s", unscored)
