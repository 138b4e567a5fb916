"""Ensemble several runs: average their eval-set predictions and evaluate the average.

The runs must have predicted the same eval set with the same class list (checked). Writes
OUT/predictions.npy, OUT/targets.npy, OUT/metrics.json and OUT/per_class_ensemble.csv.

Example:
  atdr ensemble results/synth/tal/seed0 results/synth/ast/seed0 --out results/synth/ensemble
"""

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run folders (from atdr train)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--use", default="best", choices=["best", "ensemble", "wa"],
                   help="which predictions of each run to average (default: best epoch)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the mAP CI (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from atdr.atomic import write_npy
    from atdr.errors import AtdrError
    from atdr.evaluate import describe, load_predictions, write_report
    from atdr.run import PREDICTIONS, read_run

    if len(args.runs) < 2:
        raise AtdrError("an ensemble needs at least two runs")
    first = read_run(Path(args.runs[0]))
    targets = load_predictions(Path(args.runs[0]) / "targets.npy")
    predictions = []
    for run_dir in map(Path, args.runs):
        run_info = read_run(run_dir)
        if run_info.labels != first.labels or not np.array_equal(load_predictions(run_dir / "targets.npy"), targets):
            raise AtdrError(f"{run_dir} was evaluated on other clips or classes than {args.runs[0]}")
        predictions.append(load_predictions(run_dir / PREDICTIONS[args.use]))
    average = np.mean(predictions, axis=0)
    out = Path(args.out)
    write_npy(out / "predictions.npy", average)
    write_npy(out / "targets.npy", targets)
    m = write_report(out, {"ensemble": average}, targets, first.labels, args.bootstrap,
                     info={"members": [str(Path(r)) for r in args.runs], "use": args.use})["ensemble"]
    log.info("ensemble of %d runs: %s; wrote %s", len(args.runs), describe(m, first.config.data.task), out / "metrics.json")
