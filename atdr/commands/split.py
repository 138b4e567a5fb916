"""Split segment list(s) into train, valid and eval lists, stratified over labels.

For your own recordings listed in one segment list (or several, merged): writes
OUT/train_segments.csv, OUT/valid_segments.csv and OUT/eval_segments.csv (AudioSet's format),
holding about 1 - valid - eval, valid and eval of the segments. Multi-label iterative
stratification keeps every label's share about equal in each list, and every label that has a
clip has one in train. The same lists and seed always give the same split. Then run
`atdr prep` on each list.

Example:
  atdr split my_segments.csv --valid 0.1 --eval 0.2 --seed 0 --out data/
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("segments", nargs="+", metavar="CSV", help="segment list(s) to split (merged first)")
    p.add_argument("--valid", type=float, default=0.1, metavar="FRACTION",
                   help="share of the validation list; 0 for none (default: %(default)s)")
    p.add_argument("--eval", type=float, default=0.2, metavar="FRACTION", help="share of the eval list (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random tie-breaks (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for {train,valid,eval}_segments.csv")


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from atdr.data.segments import read_segments, write_segments
    from atdr.data.split import split_segments

    segments = [s for path in args.segments for s in read_segments(path)]
    subsets = split_segments(segments, args.valid, args.eval, args.seed)
    for name, subset in subsets.items():
        write_segments(Path(args.out) / f"{name}_segments.csv", subset,
                       title=f"{name} split of {len(segments)} segments by atdr split (seed {args.seed})")
    n_labels = len({m for s in segments for m in s.labels})
    in_train = len({m for s in subsets["train"] for m in s.labels})
    log.info("%s: %s of %d segments; %d of %d labels in train", args.out,
             ", ".join(f"{len(v)} {k}" for k, v in subsets.items()), len(segments), in_train, n_labels)
