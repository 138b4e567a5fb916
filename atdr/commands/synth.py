"""Generate the embedded dataset: synthetic clips of real AudioSet classes, in AudioSet's formats.

Writes OUT/class_labels_indices.csv, OUT/{balanced_train,eval}_segments.csv (official segment-list
format), OUT/audio/{balanced_train,eval}/<ytid>.wav (16 kHz mono) and the datafiles
OUT/train.json and OUT/eval.json. Deterministic: the same seed gives the same bytes.

Example:
  atdr synth results/synth/download --train 500 --eval 200 --seconds 2
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output folder")
    p.add_argument("--train", type=int, default=500, metavar="N", help="training clips (default: %(default)s)")
    p.add_argument("--eval", type=int, default=200, metavar="N", help="evaluation clips (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=2.0, help="clip length in seconds; AudioSet's is 10 (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--classes", type=int, metavar="K",
                   help="use the first K of the embedded dataset's classes (default: all)")


def run(args: argparse.Namespace) -> None:
    from atdr.data.synth import CLASSES, synthesize  # here: torch is slow to import for every command's --help
    from atdr.errors import AtdrError

    if args.classes is None:
        args.classes = len(CLASSES)

    if args.train < 1 or args.eval < 1:
        raise AtdrError("--train and --eval must be at least 1")
    if not 0.25 <= args.seconds <= 60:
        raise AtdrError("--seconds must be between 0.25 and 60")
    if not 2 <= args.classes <= len(CLASSES):
        raise AtdrError(f"--classes must be between 2 and {len(CLASSES)}")
    labels = synthesize(args.out, args.train, args.eval, args.seconds, args.seed, args.classes)
    log.info("wrote %d + %d clips of %d classes to %s", args.train, args.eval, len(labels), args.out)
