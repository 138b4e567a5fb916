"""Compute the normalisation mean and std of a dataset's features, for one front-end.

Default (--method exact): the exact mean and std over all values of the unnormalised,
unaugmented features, padded/cropped to --target-length frames as the model sees them.
--method original computes them as the original src/get_norm_stats.py did, which gave the
paper's fixed numbers: over features augmented with --mixup, --freqm and --timem (the script's
defaults 0.5, 24, 192; config/README.md lists the settings behind each recipe's numbers), the
mean and std of each batch of --batch-size clips, averaged over batches.
Training normalises with (x - mean) / (2 * std). Clips that cannot be read (corrupt, empty, NaN,
infinite or absurdly large samples) are left out, as training leaves them out, and named: on the terminal and in the
json's "unreadable".
Writes json: {"mean", "std", "frontend", "target_length", "clips", "method", "settings", "unreadable"}.

Examples:
  atdr norm-stats data/train.json --frontend kaldi128 --target-length 1024 --out data/stats_kaldi128.json
  # as run-TAL.sh's numbers (-3.6788461, 4.3739743) were computed, on the balanced training set:
  atdr norm-stats data/balanced_train.json --frontend kaldi128 --target-length 1024 --method original \\
      --freqm 36 --timem 192 --mixup 0.3 --batch-size 100 --out data/stats_tal.json
"""

import argparse
import logging

log = logging.getLogger(__name__)

# src/get_norm_stats.py's audio_conf and batch size.
ORIGINAL = dict(mixup=0.5, freqm=24, timem=192, batch_size=1000)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("datafile", help="datafile (json), usually the training set")
    p.add_argument("--frontend", default="kaldi128", help="kaldi<N> or mel<N> (paper: kaldi128, mel64; default: %(default)s)")
    p.add_argument("--target-length", type=int, metavar="FRAMES",
                   help="frames per clip after padding/cropping (default: the recipes' 1024 for kaldi, 400 for mel)")
    p.add_argument("--out", required=True, metavar="JSON", help="stats file to write")
    p.add_argument("--workers", type=int, default=0, help="data loading processes (default: %(default)s)")
    p.add_argument("--method", choices=["exact", "original"], default="exact",
                   help="exact: unaugmented features; original: as src/get_norm_stats.py (default: %(default)s)")
    original = p.add_argument_group("--method original")
    original.add_argument("--mixup", type=float, help=f"mixup probability (default: {ORIGINAL['mixup']})")
    original.add_argument("--freqm", type=int, help=f"SpecAugment frequency mask bound (default: {ORIGINAL['freqm']})")
    original.add_argument("--timem", type=int, help=f"SpecAugment time mask bound (default: {ORIGINAL['timem']})")
    original.add_argument("--batch-size", type=int, help=f"clips per batch (default: {ORIGINAL['batch_size']})")
    original.add_argument("--seed", type=int, default=0, help="seeds the augmentation (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from atdr.config import AugmentConfig
    from atdr.data.datafile import read_datafile
    from atdr.data.dataset import AudioDataset
    from atdr.data.features import get_frontend
    from atdr.data.labels import LabelSet
    from atdr.data.stats import compute_norm_stats, compute_norm_stats_original
    from atdr.errors import AtdrError

    frontend = get_frontend(args.frontend)
    target_length = args.target_length or frontend.default_target_length
    if target_length < 1:
        raise AtdrError("--target-length must be positive")
    given = {k: getattr(args, k) for k in ORIGINAL if getattr(args, k) is not None}
    if args.method == "exact" and given:
        raise AtdrError(f"--{next(iter(given)).replace('_', '-')} is for --method original only")
    clips = read_datafile(args.datafile)
    labels = LabelSet.from_mids(sorted({m for c in clips for m in c.labels}))
    if args.method == "exact":
        stats = compute_norm_stats(AudioDataset(clips, labels, frontend, target_length, norm=None,
                                                skip_unreadable=True), num_workers=args.workers)
    else:
        settings = {**ORIGINAL, **given}
        if settings["batch_size"] < 1:
            raise AtdrError("--batch-size must be positive")
        try:
            augment = AugmentConfig(mixup=settings["mixup"], freqm=settings["freqm"], timem=settings["timem"])
        except ValidationError as e:
            raise AtdrError(f"--{e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}") from None
        dataset = AudioDataset(clips, labels, frontend, target_length, norm=None, augment=augment,
                               skip_unreadable=True)
        stats = compute_norm_stats_original(dataset, settings["batch_size"], args.seed, num_workers=args.workers)
    stats.write(args.out)
    if stats.unreadable:
        log.warning("%s: %d of %d clips could not be read and are left out (listed under \"unreadable\" in it; "
                    "`atdr prep --verify` finds such clips ahead)", args.out, len(stats.unreadable), len(clips))
    log.info("%s: mean %.6f, std %.6f over %d clips (%s, %d frames, %s)", args.out, stats.mean, stats.std,
             stats.clips, stats.frontend, stats.target_length, stats.method)
