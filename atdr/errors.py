"""How atdr commands fail: the one exception type for user mistakes (the CLI prints its message on
one line, no traceback), the message for a disk that cannot take the outputs, and the exit codes
that tell a supervisor what may be tried again."""

from __future__ import annotations

import errno
from pathlib import Path

EXIT_USER_ERROR = 2  # an AtdrError: the same command fails the same way until the input is fixed
EXIT_TRANSIENT = 74  # a fault another attempt may not meet (I/O, a dead data-loader worker, CUDA/NCCL)
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM after saving its state; the same command resumes
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (after saving, where there was something to save)


class AtdrError(Exception):
    """A problem with the user's input (file, config, argument) that they can fix.

    The message must say what is wrong and where (file, entry, key), in one line. One raised in a
    DataLoader worker keeps that line: torch raises it again in the main process as
    `AtdrError("Caught AtdrError in DataLoader worker ...<the worker's traceback>")`.
    """

    def __init__(self, message: str) -> None:
        if message.startswith(f"Caught {type(self).__name__} in DataLoader worker"):
            message = message.rstrip().rpartition(f"{type(self).__module__}.{type(self).__qualname__}: ")[2]
        super().__init__(message)


# OSErrors of a file system that cannot take the outputs: what it is, and what the user can do.
STORAGE_ERRNOS = {
    errno.ENOSPC: ("no space left on device", "free some space or write the outputs elsewhere"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write the outputs elsewhere"),
    errno.EROFS: ("read-only file system", "write the outputs elsewhere"),
}


def storage_message(code: int, path: str | Path | None, needed: int | None = None) -> str:
    """One line for a write to `path` that failed with `code` (one of STORAGE_ERRNOS), with the
    bytes it `needed` where known."""
    cause, remedy = STORAGE_ERRNOS[code]
    if needed is not None:
        remedy = f"about {max(needed, 1e5) / 1e6:.1f} MB needed; {remedy}"
    return f"{cause}: {path} ({remedy})" if path else f"{cause} ({remedy})"
