"""Conversion notes (a clip resampled, downmixed) said once per run, wherever the clip was read.

Data-loading workers are separate processes, started anew every epoch: each would say every note
again. `ConversionNotes` routes the notes of the main process and of every worker through one
queue; the main process logs each distinct note once (`flush`).
"""

from __future__ import annotations

import logging
import multiprocessing
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from atdr.data.audio import AudioConversionWarning

log = logging.getLogger("atdr")


class ConversionNotes:
    def __init__(self) -> None:
        self._queue = multiprocessing.SimpleQueue()
        self._said: set[str] = set()

    def install(self) -> None:
        """In this process (a worker, or the main one): send conversion notes to the queue, each
        at most once, instead of showing them; other warnings show as before."""
        previous, sent = warnings.showwarning, set()

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            if not issubclass(category, AudioConversionWarning):
                previous(message, category, filename, lineno, file, line)
            elif str(message) not in sent:
                sent.add(str(message))
                self._queue.put(str(message))

        warnings.showwarning = show

    def flush(self) -> None:
        """Log the notes received since the last flush that were not said before."""
        while not self._queue.empty():
            message = self._queue.get()
            if message not in self._said:
                self._said.add(message)
                log.warning("note: %s", message)

    @contextmanager
    def collecting(self) -> Iterator[ConversionNotes]:
        """Install in the main process for the duration of the block (flushed at its end)."""
        with warnings.catch_warnings():
            warnings.simplefilter("always", AudioConversionWarning)  # `install` keeps each once
            self.install()
            try:
                yield self
            finally:
                self.flush()
