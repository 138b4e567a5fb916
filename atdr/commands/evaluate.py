"""Evaluate a run: mAP with a bootstrap 95% CI, mAUC, d-prime, accuracy, per-class AP with names.

Without --data: scores the run's own eval-set predictions (best epoch, checkpoint ensemble and,
if configured, weight averaging). With --data: runs a checkpoint of the run on that datafile.
Writes OUT/metrics.json and OUT/per_class_<set>.csv (default OUT: RUN/eval).

Examples:
  atdr evaluate results/synth/tal/seed0
  atdr evaluate results/synth/tal/seed0 --data other_eval.json --checkpoint wa --out eval_other
"""

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (from atdr train)")
    p.add_argument("--data", metavar="JSON", help="evaluate a checkpoint on this datafile instead")
    p.add_argument("--checkpoint", default="best", choices=["best", "wa"], help="with --data: which model (default: best)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN/eval)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the mAP CI; 0 = none (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="with --data: clips per forward pass (default: %(default)s)")
    p.add_argument("--workers", type=int, default=0, help="with --data: data loading processes (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    from atdr.evaluate import describe, load_predictions, write_report
    from atdr.errors import AtdrError
    from atdr.run import PREDICTIONS, read_run

    run_dir = Path(args.run)
    out = Path(args.out) if args.out else run_dir / "eval"
    run_info = read_run(run_dir)
    if args.data:
        from atdr.checkpoint import ModelBundle
        from atdr.tag import predict_datafile

        bundle = ModelBundle.load(run_dir / "checkpoints" / f"{args.checkpoint}.pt")
        predictions, targets = predict_datafile(bundle, args.data, args.batch_size, args.workers)
        sets, labels = {args.checkpoint: predictions}, bundle.labels
    else:
        labels = run_info.labels
        sets = {name: load_predictions(run_dir / file) for name, file in PREDICTIONS.items()
                if (run_dir / file).exists()}
        if "best" not in sets:
            raise AtdrError(f"{run_dir} has no predictions.npy: is the run finished? (atdr train writes it at the end)")
        targets = load_predictions(run_dir / "targets.npy")
    metrics = write_report(out, sets, targets, labels, args.bootstrap)
    for name, m in metrics.items():
        log.info("%s %s: %s", run_dir, name, describe(m, run_info.config.data.task))
    log.info("wrote %s", out / "metrics.json")
