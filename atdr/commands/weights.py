"""Write per-clip sampling weights for balanced training (the original gen_weight_file.py).

label weight = 1000 / (clips with that label + 0.01); clip weight = sum over its labels.
One float per line, in datafile order. Default output: <datafile stem>_weight.csv beside it.

Example:
  atdr weights data/train.json --labels class_labels_indices.csv
"""

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("datafile", help="training datafile (json)")
    p.add_argument("--labels", required=True, metavar="CSV", help="class_labels_indices.csv")
    p.add_argument("--out", metavar="CSV", help="weight file (default: DATAFILE stem + _weight.csv)")


def run(args: argparse.Namespace) -> None:
    from atdr.data.datafile import read_datafile
    from atdr.data.labels import LabelSet
    from atdr.data.weights import sample_weights, write_weights

    labels = LabelSet.read(args.labels)
    clips = read_datafile(args.datafile, labels, check_files=False)
    datafile = Path(args.datafile)
    out = Path(args.out) if args.out else datafile.with_name(f"{datafile.stem}_weight.csv")
    weights = sample_weights(clips, labels)
    write_weights(out, weights)
    log.info("%s: %d weights (min %.3g, max %.3g)", out, len(weights), weights.min(), weights.max())
