"""Compare models: one table (csv, markdown, LaTeX) of every model and ensemble, and figures.

Reads run folders results/DATASET/MODEL/seedN (after `atdr evaluate RUN`) and cross-model
ensemble folders results/DATASET/ensembles/NAME/seedN (from `atdr ensemble`); the path gives
dataset, model and seed. One row per (dataset, model): architecture, front-end, parameters,
GFLOPs per clip at the run's input size, seeds, mAP (mean over seeds) with its bootstrap 95% CI
and the std over seeds, mAUC, d-prime, accuracy (singlelabel tasks), checkpoint-ensemble and
weight-averaging mAP, training hours per seed and device; then one row per ensemble.

Writes OUT/table.{csv,md,tex}, OUT/mAP_by_model.{png,pdf}, OUT/per_class_ap.png (best and
worst classes of each dataset's best model), OUT/training_curves.png, OUT/mAP_vs_params.png.

Example:
  atdr compare --runs results/synth/*/seed* --ensembles results/synth/ensembles/all/seed0 \\
      --out results/comparison
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", nargs="*", default=[], metavar="RUN", help="run folders results/DATASET/MODEL/seedN")
    p.add_argument("--ensembles", nargs="*", default=[], metavar="DIR",
                   help="ensemble folders results/DATASET/ensembles/NAME/seedN (from atdr ensemble)")
    p.add_argument("--out", default="results/comparison", metavar="DIR", help="output folder (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from atdr.report import compare

    table = compare(args.runs, args.ensembles, args.out)
    log.info("compared %d models and ensembles on %d datasets; wrote %s/table.md and figures", len(table),
             table["dataset"].nunique(), args.out)
