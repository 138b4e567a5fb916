"""Starting a trainer again after what it can recover from, and only that: `atdr train --restarts N`.

The trainer runs as a child process (one process, `torchrun`, or `srun` over a SLURM allocation);
how it ends decides what happens next:

- 0: done.
- 2 (a user error: config, data) or 1 (a bug): stop at once; another attempt would fail the same way.
- 75 (stopped by SIGTERM after saving: pre-empted), 74 (a transient fault: an I/O error, a dead
  data-loader worker, a CUDA or NCCL error) or killed by a signal (the OOM killer, a crash in
  native code): start it again, at most N times; it resumes from `checkpoints/last.pt`.

Unless this process was signalled too: then the whole job is being stopped (Ctrl-C, a SLURM
pre-emption or time limit), and it ends with the trainer's code. SIGTERM and SIGINT sent to this
process are passed on to the trainer, which runs in its own process group so that it gets each
signal once; not inside a SLURM job, where SLURM signals every process of the job itself. What
is left of the trainer's process group when it ends (the data-loader workers of a killed trainer,
which hold the run folder's lock) is killed before it starts again.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping

from atdr.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED, EXIT_TRANSIENT, STORAGE_ERRNOS

log = logging.getLogger(__name__)

# OSErrors that another attempt meets again: the input or the disk, not a passing fault.
_LASTING_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG,
                   *STORAGE_ERRNOS}
_TRANSIENT_MESSAGES = ("DataLoader worker", "CUDA error", "NCCL", "CUBLAS_STATUS", "cuDNN error", "ECC error")


def is_transient(error: BaseException) -> bool:
    """Whether another attempt may not meet `error`: an I/O fault (not a missing file, a permission
    or a full disk), a data-loader worker that died, a CUDA or NCCL error."""
    if isinstance(error, OSError):
        return error.errno not in _LASTING_ERRNOS
    return isinstance(error, RuntimeError) and any(text in str(error) for text in _TRANSIENT_MESSAGES)


def _ending(code: int) -> str:
    if code == EXIT_PREEMPTED:
        return "was stopped by SIGTERM after saving its state (pre-empted)"
    if code == EXIT_TRANSIENT:
        return "met a transient fault"
    return f"was killed by {signal.Signals(-code).name}"


class _Signals:
    """Records SIGTERM/SIGINT sent to this process and passes them on to the child's process group."""

    def __init__(self, forward: bool) -> None:
        self.forward = forward
        self.received: int | None = None
        self.child: subprocess.Popen | None = None

    def __enter__(self) -> _Signals:
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.received = signum
        self._pass_on()

    def watch(self, child: subprocess.Popen | None) -> None:
        """Pass signals on to `child` from now on (and one received while it was starting)."""
        self.child = child
        self._pass_on()

    def _pass_on(self) -> None:
        if self.forward and self.received is not None and self.child is not None and self.child.poll() is None:
            os.killpg(self.child.pid, self.received)

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def _end_leftovers(group: int, wait_s: float = 10.0) -> None:
    """Kill what is left of the trainer's process group (its data-loader workers, when the trainer
    itself was killed) and wait until it is gone: they would hold the run folder's lock."""
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def supervise(argv: list[str], env: Mapping[str, str], restarts: int, *, in_slurm: bool) -> int:
    """Run `argv` until it succeeds, fails for good or is stopped with this process; return its exit code."""
    with _Signals(forward=not in_slurm) as signals:
        attempt = 0
        while True:
            child = subprocess.Popen(argv, env=dict(env), start_new_session=True)
            signals.watch(child)
            code = child.wait()
            signals.watch(None)
            _end_leftovers(child.pid)
            if signals.received is not None:  # the job as a whole is being stopped
                if code < 0:
                    code = EXIT_PREEMPTED if signals.received == signal.SIGTERM else EXIT_INTERRUPTED
                return code
            if code >= 0 and code not in (EXIT_PREEMPTED, EXIT_TRANSIENT):
                return code
            if attempt == restarts:
                log.error("the trainer %s; no restarts left (%d used)", _ending(code), restarts)
                return code if code > 0 else 128 - code
            attempt += 1
            log.warning("the trainer %s; starting it again (restart %d of %d), from its last saved state",
                        _ending(code), attempt, restarts)
