"""What each model costs: parameters, GFLOPs, training and inference speed, mAP per device-hour.

Per model (mean over seeds): parameters and GFLOPs per clip at the run's input size, eval mAP,
training clips/s (the training loop's, from summary.json), inference clips/s (measured now:
the first --clips eval clips read, featurised and scored by the best checkpoint in fp32, on CUDA
when available), training cost in device-hours (GPU-hours on CUDA: the training job's wall time
times its GPUs; CPU-hours on the CPU: the job's CPU time), both from each run's training
benchmark (--benchmarks, Snakemake's benchmark files; without them, the training loop's time
from summary.json), and mAP per device-hour. Models on the Pareto front of mAP against training
cost are marked. Runs are results/DATASET/MODEL/seedN folders, evaluated (`atdr evaluate`).

Writes OUT/cost.{csv,md} and OUT/mAP_vs_cost.png.

Example:
  atdr cost results/synth/*/seed0 --benchmarks results/benchmarks/synth/*/seed0/train.tsv --out results/synth/analysis/cost
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders results/DATASET/MODEL/seedN")
    p.add_argument("--benchmarks", nargs="+", metavar="TSV", help="each run's training benchmark file, in the same order")
    p.add_argument("--clips", type=int, default=64, help="eval clips timed per run for inference (default: %(default)s)")
    p.add_argument("--workers", type=int, default=0, help="data loading processes when timing (default: %(default)s)")
    p.add_argument("--gpus", type=int, default=1, choices=[0, 1],
                   help="1: time inference on a free GPU where there is one (claimed as by atdr train); 0: on the CPU "
                        "(default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")


def run(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from atdr.analysis.cost import cost
    from atdr.gpus import claim_device

    table = cost(args.runs, args.out, args.benchmarks, args.clips, args.workers, claim_device(args.gpus))
    front = ", ".join(table[table["pareto"]]["model"])
    log.info("cost of %d models; Pareto front: %s; wrote %s", len(table), front, args.out)
