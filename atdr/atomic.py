"""Atomic file writes: write to a temporary file beside the target, then rename.

A process killed mid-write (SIGTERM from SLURM, Ctrl-C) leaves the previous file intact, never a
truncated one (`atdr train` removes the temporary files such a kill leaves behind). A write that
fails for want of space says so in one line, with the space it needed.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from atdr.errors import AtdrError


def _out_of_space(error: Exception, folder: Path, size: int | None) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:  # some writers (torch.save) hide the OS error: judge by the space left
        return size is not None and shutil.disk_usage(folder).free < size
    except OSError:
        return False


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
        tmp.unlink(missing_ok=True)
        if _out_of_space(e, path.parent, size):
            needed = f"needed about {max(size, 1e5) / 1e6:.1f} MB" if size is not None else f"writing {path.name}"
            raise AtdrError(f"no space left on device ({needed} in {path.parent})") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    data = text.encode("utf-8")
    with atomic_path(path, len(data)) as tmp:
        tmp.write_bytes(data)


def write_npy(path: str | Path, array) -> None:
    """numpy.save without its habit of appending `.npy` to the temporary name."""
    import numpy as np

    with atomic_path(path, np.asarray(array).nbytes) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
