"""Atomic file writes: write to a temporary file beside the target, then rename.

A process killed mid-write (SIGTERM from SLURM, Ctrl-C) leaves the previous file intact, never a
truncated one (`atdr train` removes the temporary files such a kill leaves behind). A write that
fails for want of space (or on a read-only file system) leaves no temporary file and says so in
one line naming the file, with the space it needed.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from atdr.errors import STORAGE_ERRNOS, AtdrError, storage_message


def _storage_errno(error: Exception, folder: Path, size: int | None) -> int | None:
    """The STORAGE_ERRNOS code `error` stands for, if any."""
    if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
        return error.errno
    try:  # some writers (torch.save) hide the OS error: judge by the space left
        return errno.ENOSPC if size is not None and shutil.disk_usage(folder).free < size else None
    except OSError:
        return None


@contextmanager
def atomic_path(path: str | Path, size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path to write to; it replaces `path` only if the block succeeds.
    `size`: about how many bytes will be written (for the message when the disk is full)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except Exception as e:
        _remove(tmp)  # before judging the space left
        code = _storage_errno(e, path.parent, size)
        if code is not None:
            raise AtdrError(storage_message(code, path, size)) from None
        raise
    finally:
        _remove(tmp)


def _remove(tmp: Path) -> None:
    with suppress(OSError):  # none there: a read-only file system says so
        tmp.unlink(missing_ok=True)


@contextmanager
def writing_to(path: str | Path) -> Iterator[None]:
    """Name `path` in the OSError of a full or read-only disk raised inside without a file name (a
    failed write, flush or close of a file left open), so that the CLI's one line says where."""
    try:
        yield
    except OSError as e:
        if e.errno in STORAGE_ERRNOS and e.filename is None:
            e.filename = str(path)
        raise


def write_text(path: str | Path, text: str) -> None:
    data = text.encode("utf-8")
    with atomic_path(path, len(data)) as tmp:
        tmp.write_bytes(data)


def write_npy(path: str | Path, array) -> None:
    """numpy.save without its habit of appending `.npy` to the temporary name."""
    import numpy as np

    with atomic_path(path, np.asarray(array).nbytes) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
