"""Ensemble several runs: average their eval-set predictions and evaluate the average.

The runs must have predicted the same eval set with the same class list (checked). Predictions
are matched by eval clip (each run's predictions_clips.csv): clips that some run could not read
are left out of the average, and counted on the terminal. Writes OUT/predictions.npy,
OUT/targets.npy, OUT/predictions_clips.csv (the clip of each row), OUT/metrics.json and
OUT/per_class_ensemble.csv.

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
    from atdr.atomic import write_npy
    from atdr.ensemble import Scored, average
    from atdr.errors import AtdrError
    from atdr.evaluate import describe, write_report
    from atdr.run import write_prediction_clips

    if len(args.runs) < 2:
        raise AtdrError("an ensemble needs at least two runs")
    members = [Scored.read(Path(run), args.use) for run in args.runs]
    ensemble = average(members)
    if ensemble.left_out:
        log.warning("ensemble: %d of %d eval clips left out: not every run could read them (first: %s; each run's "
                    "summary.json names its unreadable clips)", len(ensemble.left_out),
                    len(ensemble.left_out) + len(ensemble.clips), ensemble.left_out[0].wav)
    out = Path(args.out)
    write_npy(out / "predictions.npy", ensemble.predictions)
    write_npy(out / "targets.npy", ensemble.targets)
    write_prediction_clips(out, ensemble.clips)
    info = {"members": [str(Path(r)) for r in args.runs], "use": args.use,
            "left_out": [clip.wav for clip in ensemble.left_out]}
    m = write_report(out, {"ensemble": ensemble.predictions}, ensemble.targets, members[0].labels, args.bootstrap,
                     info=info)["ensemble"]
    log.info("ensemble of %d runs on %d clips: %s; wrote %s", len(args.runs), len(ensemble.clips),
             describe(m, members[0].task), out / "metrics.json")
