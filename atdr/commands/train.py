"""Train one model on one dataset with one seed, as described by a run config (YAML or JSON).

The config's sections (see config/README.md): model (name, params), data (datafiles, labels,
weights, front-end, norm stats), augment (mixup, freqm, timem, noise), optim (lr, warm-up,
milestones) and train (epochs, batch size, seed, workers, threads). Override any key with
--set section.key=value. The resolved config is saved as OUT/config.yaml.

Interrupting is safe: SIGTERM (pre-emption) or Ctrl-C saves OUT/checkpoints/last.pt and exits
with code 75 (SIGTERM) or 130 (Ctrl-C); running the same command again resumes exactly. Running
it on a finished run only rewrites the final outputs. Exit code 2: a mistake in the config or
the data; 74: a transient fault (an I/O error, a dead data-loader worker, a CUDA or NCCL error).
Every attempt's log is appended to OUT/train.log.

--restarts N runs the trainer as a child process and starts it again, resuming, after a
transient fault, after it alone was sent SIGTERM or after it was killed (the OOM killer), at most
N times; never after a mistake in the config or the data. The workflow uses it.

SLURM: inside a SLURM job, a trainer stopped by SIGTERM while its job goes on running (a
pre-emption notice, `scancel --signal=TERM`, `sbatch --signal=TERM@120`) or at its time limit
requeues its job with `scontrol requeue`, so SLURM starts it again and it resumes, any number of
times. A cancelled job is not requeued.

OUT belongs to one run: a second `atdr train` on it stops at once (OUT/.lock names the holder),
and OUT holding a run of another config or on other data (a datafile, the class list, weights,
norm stats, a packed store or a clip changed since it started: OUT/data.json) is refused;
--force deletes that run's outputs first and trains from the start.

GPUs: --gpus N claims N free GPUs (lock files, so concurrent jobs never share one; SLURM's or
your CUDA_VISIBLE_DEVICES is respected) and, for N > 1, trains data-parallel: through torchrun on
this machine, or inside a SLURM job as N `srun` tasks over the job's nodes (one run across
several nodes; without CUDA they train on the CPU over gloo). Without CUDA and outside SLURM it
trains in one process on the CPU. By hand:
  torchrun --standalone --nproc_per_node N -m atdr train --config run.yaml --out DIR

Example:
  atdr train --config run.yaml --out results/runs/tal-seed0 --set train.epochs=5
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from atdr.errors import STORAGE_ERRNOS, AtdrError

if TYPE_CHECKING:
    from atdr.config import RunConfig

log = logging.getLogger(__name__)
# The line that starts each attempt in OUT/train.log (host, SLURM job and restart, GPUs): there
# only, so that a command that fails at once still prints one line.
_attempt = logging.getLogger(f"{__name__}.attempt")
_attempt.propagate = False
_attempt.setLevel(logging.INFO)

# Set for the trainer process(es) started by this command: train here, launch nothing.
WORKER = "ATDR_TRAIN_WORKER"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="YAML", help="run config (YAML or JSON)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder for checkpoints, metrics and predictions")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. optim.lr=1e-4 or model.params.dropout=0.1 (repeatable)")
    p.add_argument("--force", action="store_true",
                   help="if OUT holds a run of another config or on other data, delete its outputs and start over")
    p.add_argument("--gpus", type=int, default=1, metavar="N",
                   help="GPUs for this run; N > 1 trains with N processes (DDP) (default: %(default)s)")
    p.add_argument("--restarts", type=int, default=0, metavar="N",
                   help="start the trainer again after pre-emption or a transient fault, at most N times "
                        "(default: %(default)s: train in this process)")


def run(args: argparse.Namespace) -> int:
    from atdr.config import load_config

    cfg = load_config(args.config, args.set)  # fail on a bad config before claiming or starting anything
    with _run_log(args.out):
        try:
            if "WORLD_SIZE" in os.environ or os.environ.get(WORKER):
                return _train_here(cfg, args.out, args.force)
            return _launch(args, cfg)
        except AtdrError as e:
            _attempt.error("atdr train: error: %s", e)  # in the run's log too; the console gets it from the CLI
            raise


@contextmanager
def _run_log(out: str):
    """Also log to OUT/train.log, appending: it keeps every attempt of the run (a workflow's own
    log file is replaced each time Snakemake runs the job), each starting with `_attempt`'s line."""
    from atdr import runfolder

    runfolder.create(Path(out))
    handler = _RunLog(Path(out) / "train.log", mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    for logger in (logging.getLogger(), _attempt):
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in (logging.getLogger(), _attempt):
            logger.removeHandler(handler)
        handler.close()


class _RunLog(logging.FileHandler):
    """A full or read-only disk ends the command (the CLI's one line, naming the log), instead of
    logging's traceback for every record that cannot be written."""

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not (isinstance(error, OSError) and error.errno in STORAGE_ERRNOS):
            return super().handleError(record)
        stream, self.stream = self.stream, None
        with suppress(OSError):
            stream.close()  # its unwritten lines cannot be written
        raise OSError(error.errno, error.strerror, self.baseFilename)


def _launch(args: argparse.Namespace, cfg: RunConfig) -> int:
    """Claim the GPUs and start the trainer(s): here, exec'd, or supervised (--restarts)."""
    from atdr import slurm
    from atdr.gpus import claim_gpus, device_count

    cuda = device_count() > 0
    if cuda:
        claim_gpus(args.gpus)
    job = slurm.job_id()
    where = f"SLURM job {job}, restart {slurm.job_fields(job).get('Restarts', '?')}" if job else "not in a SLURM job"
    _attempt.info("atdr train %s: %s, pid %d, %s, CUDA_VISIBLE_DEVICES=%s", args.out, socket.gethostname(),
                  os.getpid(), where, os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"))
    trainers = _trainers(args, cuda, job)
    if trainers is None:
        return _train_here(cfg, args.out, args.force)
    argv, env = trainers
    if args.restarts:
        from atdr.supervise import supervise

        return supervise(argv, env, args.restarts, in_slurm=job is not None)
    os.execvpe(argv[0], argv, env)  # the GPU locks stay held across exec
    raise AssertionError("not reached")


def _trainers(args: argparse.Namespace, cuda: bool, job: str | None) -> tuple[list[str], dict[str, str]] | None:
    """The command (and environment) that starts the run's trainer process(es); None: train here."""
    from atdr import slurm

    module_args = ["train", "--config", args.config, "--out", args.out, "--gpus", "1",
                   *[f"--set={item}" for item in args.set], *["--force"] * args.force]
    if job and args.gpus > 1:  # the GPUs SLURM allocated, on one node or several
        argv, env = slurm.ddp_over_allocation(args.gpus, module_args)
    elif cuda and args.gpus > 1:
        argv, env = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.gpus}",
                     "-m", "atdr", *module_args], dict(os.environ)
    elif args.restarts:
        argv, env = [sys.executable, "-m", "atdr", *module_args], dict(os.environ)
    else:
        return None
    # PYTHONSAFEPATH: `python -m atdr` (here, torchrun's and srun's processes alike) leaves the
    # current folder off sys.path, so that a folder holding an `atdr/` of its own is never imported.
    return argv, {**env, WORKER: "1", "PYTHONSAFEPATH": "1"}


def _train_here(cfg: RunConfig, out: str, force: bool) -> int:
    """Train in this process; the exit code says how it ended (see the module's doc)."""
    from atdr import slurm
    from atdr.errors import EXIT_PREEMPTED, EXIT_TRANSIENT
    from atdr.supervise import is_transient
    from atdr.train import Stopped, train

    os.environ.update(slurm.rank_environment())
    try:
        train(cfg, out, force=force)
    except Stopped as e:
        log.warning("%s", e)
        job = slurm.job_id()
        if e.code == EXIT_PREEMPTED and job and os.environ.get("RANK", "0") == "0":
            slurm.requeue_after_stop(job)
        return e.code
    except Exception as e:
        if not is_transient(e):
            raise
        log.error("transient fault: %s: %s", type(e).__name__, e)
        return EXIT_TRANSIENT
    return 0
