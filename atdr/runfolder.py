"""A run folder belongs to one run.

`claim(out, config, data, force)` is held for the life of `atdr train`: a lock file (`.lock`,
naming the pid and host) stops a second training on the same folder; a folder holding another
run — one of another config, or on other data (`data.json`: the fingerprints of what it read,
`atdr.data.fingerprint`) — is refused, or with `force` emptied of every output of that run first
(so that no stale `wa.pt` or `predictions_wa.npy` outlives it); temporary files left by a save
that was killed are removed.
"""

from __future__ import annotations

import fcntl
import json
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
DATA = "data.json"
# Everything `atdr train` (and `atdr evaluate RUN`) writes into a run folder; anything else there
# (the workflow's run.yaml, your notes) is left alone.
OUTPUTS = (CONFIG, DATA, "metrics.csv", "steps.csv", "summary.json", "targets.npy", *PREDICTIONS.values(),
           PREDICTION_CLIPS, "checkpoints", "eval")
_TEMPORARY = re.compile(r"^\..+\.tmp\d+$")  # atdr.atomic's temporary names


@contextmanager
def claim(out: Path, config: dict, data: dict[str, str], force: bool = False) -> Iterator[None]:
    """Hold run folder `out` for a run of `config` (a `RunConfig.to_dict()`) on `data`
    (`atdr.data.fingerprint.data_fingerprint`)."""
    create(out)
    with _locked(out / LOCK):
        _remove_temporaries(out)
        _check_identity(out, config, data, force)
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


def difference(old_config: dict, old_data: dict | None, config: dict, data: dict[str, str]) -> str | None:
    """How a saved run differs from a run of `config` on `data`, the config first ("a run of
    another config (optim.lr: 0.001 -> 0.002)", "a run on other data (train.json changed since
    it started)"); None: the same run."""
    changed = _first_difference(results_relevant(old_config), results_relevant(config))
    if changed:
        return f"a run of another config ({changed})"
    if old_data is None:
        return "a run whose data was not recorded"
    changed = [what for what in {**old_data, **data} if old_data.get(what) != data.get(what)]
    return f"a run on other data ({changed[0]} changed since it started)" if changed else None


def _check_identity(out: Path, config: dict, data: dict[str, str], force: bool) -> None:
    # (empty folders do not count: Snakemake creates checkpoints/ before the job starts)
    leftovers = [name for name in OUTPUTS if (out / name).is_file() or (out / name).is_dir() and any((out / name).iterdir())]
    if not leftovers:
        return
    if not (out / CONFIG).exists():
        held = f"a run of unknown config (no {CONFIG} beside {', '.join(leftovers)})"
    else:
        try:
            old_config = yaml.safe_load((out / CONFIG).read_text(encoding="utf-8"))
            old_data = json.loads((out / DATA).read_text(encoding="utf-8")) if (out / DATA).exists() else None
            held = difference(old_config, old_data, config, data)
        except (OSError, ValueError, yaml.YAMLError, AttributeError):
            held = f"a run whose {CONFIG} or {DATA} cannot be read"
        if held is None:
            return
    if not force:
        raise AtdrError(f"{out} holds {held}: pass --force to delete its outputs and start over, or give another --out")
    for name in leftovers:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    log.warning("--force: %s held %s; removed its outputs (%s)", out, held, ", ".join(leftovers))
