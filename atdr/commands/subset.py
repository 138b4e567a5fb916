"""Nested, stratified subsets of a training set, for the data-efficiency analysis.

For each fraction, OUT/<fraction>/train.json holds about that share of the training clips and
of every label's clips, and OUT/<fraction>/train_weight.csv their sampling weights (as `atdr
weights`, from the subset's own labels). Each subset contains the smaller ones; every label that
has clips has one in the smallest; the same datafile, fractions and seed always give the same
subsets, so every model and seed trains on the same clips. OUT/subsets.csv counts the clips and
every label's positives in each subset. The whole set (fraction 1) is the datafile itself.

Example:
  atdr subset results/synth/data/train.json --labels results/synth/download/class_labels_indices.csv \\
      --fractions 0.25 0.5 --seed 0 --out results/synth/analysis/data_efficiency
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("datafile", help="training datafile (json)")
    p.add_argument("--labels", required=True, metavar="CSV", help="class_labels_indices.csv")
    p.add_argument("--fractions", required=True, type=float, nargs="+", metavar="F",
                   help="shares of the training clips, each between 0 and 1")
    p.add_argument("--seed", type=int, default=0, help="seed of the stratification's tie-breaks (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for <fraction>/train.json and subsets.csv")


def run(args: argparse.Namespace) -> None:
    from collections import Counter
    from pathlib import Path

    import pandas as pd

    from atdr.analysis import variant_name
    from atdr.atomic import atomic_path
    from atdr.data.datafile import read_datafile, write_datafile
    from atdr.data.labels import LabelSet
    from atdr.data.split import nested_subsets
    from atdr.data.weights import sample_weights, write_weights

    labels = LabelSet.read(args.labels)
    clips = read_datafile(args.datafile, labels)
    fractions = sorted(args.fractions)
    out = Path(args.out)
    subsets = [[clips[i] for i in indices] for indices in nested_subsets([c.labels for c in clips], fractions, args.seed)]
    for fraction, subset in zip(fractions, subsets):
        folder = out / variant_name(fraction)
        write_datafile(folder / "train.json", subset)
        write_weights(folder / "train_weight.csv", sample_weights(subset, labels))
        log.info("%s: %d of %d clips (%.1f%%)", folder / "train.json", len(subset), len(clips),
                 100 * len(subset) / len(clips))
    total = Counter(m for c in clips for m in c.labels)
    rows = []
    for fraction, subset in [*zip(fractions, subsets), (1.0, clips)]:
        held = Counter(m for c in subset for m in c.labels)
        rows += [{"fraction": fraction, "clips": len(subset), "mid": mid, "positives": held[mid],
                  "share_of_label": held[mid] / total[mid]} for mid in labels.mids if total[mid]]
    with atomic_path(out / "subsets.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
