"""A run folder belongs to one run.

`claim(out, config, force)` is held for the life of `atdr train`: a lock file (`.lock`, naming the
pid and host) stops a second training on the same folder; a folder holding a run of another
config is refused, or with `force` emptied of every output of that run first (so that no stale
`wa.pt` or `predictions_wa.npy` outlives it); temporary files left by a save that was killed
are removed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from atdr.config import results_relevant
from atdr.errors import AtdrError
from atdr.run import PREDICTION_CLIPS, PREDICTIONS

log = logging.getLogger(__name__)

LOCK = ".lock"
CONFIG = "config.yaml"
# Everything `atdr train` (and `atdr evaluate RUN`) writes into a run folder; anything else there
# (the workflow's run.yaml, your notes) is left alone.
OUTPUTS = (CONFIG, "metrics.csv", "steps.csv", "summary.json", "targets.npy", *PREDICTIONS.values(), PREDICTION_CLIPS,
           "checkpoints", "eval")
_TEMPORARY = re.compile(r"^\..+\.tmp\d+$")  # atdr.atomic's temporary names


@contextmanager
def claim(out: Path, config: dict, force: bool = False) -> Iterator[None]:
    """Hold run folder `out` for a run of `config` (a `RunConfig.to_dict()`)."""
    create(out)
    with _locked(out / LOCK):
        _remove_temporaries(out)
        _check_config(out, config, force)
        yield


def create(out: Path) -> None:
    """Make run folder `out` (and its parents) if needed; a file there, or a folder that cannot be
    made, is an AtdrError."""
    if out.exists() and not out.is_dir():
        raise AtdrError(f"--out {out} is a file; give a folder for the run's outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AtdrError(f"cannot create run folder {out}: {e.strerror}") from None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    f = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise AtdrError(f"{path.parent} is in use by {holder}: a run folder holds one run at a time "
                            "(wait for it, or give another --out)") from None
        f.seek(0)
        f.truncate()
        f.write(f"atdr train (pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        f.flush()
        yield
    finally:
        f.close()  # releases the lock


def _remove_temporaries(out: Path) -> None:
    """Temporary files of atomic writes whose process was killed (none can be live: we hold the lock)."""
    stale = [p for folder in (out, out / "checkpoints", out / "eval") if folder.is_dir()
             for p in folder.iterdir() if _TEMPORARY.match(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temporary file(s) left by an interrupted save: %s", len(stale), ", ".join(p.name for p in stale))


def _first_difference(old: object, new: object, where: str = "") -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            found = _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
            if found:
                return found
        return None
    return None if old == new else f"{where}: {old!r} -> {new!r}"


def _check_config(out: Path, config: dict, force: bool) -> None:
    saved = out / CONFIG
    # (empty folders do not count: Snakemake creates checkpoints/ before the job starts)
    leftovers = [name for name in OUTPUTS if (out / name).is_file() or (out / name).is_dir() and any((out / name).iterdir())]
    if not saved.exists():
        if not leftovers:
            return
        difference = f"no {CONFIG} beside {', '.join(leftovers)}"
    else:
        try:
            old = yaml.safe_load(saved.read_text(encoding="utf-8"))
            difference = _first_difference(results_relevant(old), results_relevant(config))
        except (OSError, yaml.YAMLError, AttributeError):
            difference = f"unreadable {CONFIG}"
        if difference is None:
            return
    if not force:
        raise AtdrError(f"{out} holds a run of another config ({difference}): pass --force to delete its outputs "
                        "and start over, or give another --out")
    for name in leftovers:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    log.warning("--force: %s held a run of another config (%s); removed its outputs (%s)", out, difference,
                ", ".join(leftovers))
