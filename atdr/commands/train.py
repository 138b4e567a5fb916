"""Train one model on one dataset with one seed, as described by a run config (YAML or JSON).

The config's sections (see config/README.md): model (name, params), data (datafiles, labels,
weights, front-end, norm stats), augment (mixup, freqm, timem, noise), optim (lr, warm-up,
milestones) and train (epochs, batch size, seed, workers). Override any key with
--set section.key=value. The resolved config is saved as OUT/config.yaml.

Interrupting is safe: SIGTERM (SLURM pre-emption) or Ctrl-C saves OUT/checkpoints/last.pt and
exits with code 75 (SIGTERM) or 130 (Ctrl-C); running the same command again resumes exactly.
Running it on a finished run only rewrites the final outputs.

OUT belongs to one run: a second `atdr train` on it stops at once (OUT/.lock names the holder),
and OUT holding a run of another config is refused; --force deletes that run's outputs first.

GPUs: --gpus N claims N free GPUs (lock files, so concurrent jobs never share one; SLURM's or
your CUDA_VISIBLE_DEVICES is respected) and, for N > 1, trains data-parallel through torchrun.
Without CUDA it trains on the CPU. Equivalent by hand:
  torchrun --standalone --nproc_per_node N -m atdr train --config run.yaml --out DIR

Example:
  atdr train --config run.yaml --out results/runs/tal-seed0 --set train.epochs=5
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="YAML", help="run config (YAML or JSON)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder for checkpoints, metrics and predictions")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. optim.lr=1e-4 or model.params.dropout=0.1 (repeatable)")
    p.add_argument("--force", action="store_true",
                   help="if OUT holds a run of another config, delete its outputs and start over")
    p.add_argument("--gpus", type=int, default=1, metavar="N",
                   help="GPUs for this run; N > 1 launches N processes with torchrun (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from atdr.config import load_config
    from atdr.gpus import claim_gpus, device_count
    from atdr.train import Stopped, train

    cfg = load_config(args.config, args.set)  # fail on a bad config before claiming anything
    if "WORLD_SIZE" not in os.environ and device_count() > 0:
        claim_gpus(args.gpus)
        if args.gpus > 1:
            argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.gpus}",
                    "-m", "atdr", "train",
                    "--config", args.config, "--out", args.out, "--gpus", "1"]
            argv += [f"--set={item}" for item in args.set] + ["--force"] * args.force
            os.execv(argv[0], argv)  # the GPU locks stay held across exec
    try:
        train(cfg, args.out, force=args.force)
    except Stopped as e:
        log.warning("%s", e)
        return e.code
    return 0
