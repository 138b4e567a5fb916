"""Compute the normalisation mean and std of a dataset's features, for one front-end.

Exact mean and std over all values of the unnormalised, unaugmented features, padded/cropped to
--target-length frames as the model sees them. Training normalises with (x - mean) / (2 * std).
Writes json: {"mean", "std", "frontend", "target_length", "clips"}.

Example:
  atdr norm-stats data/train.json --frontend kaldi128 --target-length 1024 --out data/stats_kaldi128.json
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("datafile", help="datafile (json), usually the training set")
    p.add_argument("--frontend", default="kaldi128", help="kaldi<N> or mel<N> (paper: kaldi128, mel64; default: %(default)s)")
    p.add_argument("--target-length", type=int, metavar="FRAMES",
                   help="frames per clip after padding/cropping (default: the recipes' 1024 for kaldi, 400 for mel)")
    p.add_argument("--out", required=True, metavar="JSON", help="stats file to write")
    p.add_argument("--workers", type=int, default=0, help="data loading processes (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    from atdr.data.datafile import read_datafile
    from atdr.data.dataset import AudioDataset
    from atdr.data.features import get_frontend
    from atdr.data.labels import LabelSet
    from atdr.data.stats import compute_norm_stats
    from atdr.errors import AtdrError

    frontend = get_frontend(args.frontend)
    target_length = args.target_length or frontend.default_target_length
    if target_length < 1:
        raise AtdrError("--target-length must be positive")
    clips = read_datafile(args.datafile)
    labels = LabelSet.from_mids(sorted({m for c in clips for m in c.labels}))
    dataset = AudioDataset(clips, labels, frontend, target_length, norm=None)
    stats = compute_norm_stats(dataset, num_workers=args.workers)
    stats.write(args.out)
    log.info("%s: mean %.6f, std %.6f over %d clips (%s, %d frames)", args.out, stats.mean, stats.std,
             stats.clips, stats.frontend, stats.target_length)
