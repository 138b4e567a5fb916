"""Conversion notes (a clip resampled, downmixed) said once per command, wherever the clip was read.

Data-loading workers are separate processes, started anew every epoch: each would say every note
again. `ConversionNotes` says the notes of the process that made it at once, and routes those of
its workers (forked after `install`, or calling it themselves) through one queue, which `flush`
empties; each distinct note is said once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("atdr")


class AudioConversionWarning(UserWarning):
    """A clip was downmixed or resampled on load (said once per kind of conversion)."""


class ConversionNotes:
    def __init__(self) -> None:
        self._queue = multiprocessing.SimpleQueue()
        self._said: set[str] = set()
        self._owner = os.getpid()

    def install(self) -> None:
        """In this process and those it forks: conversion notes are said (here) or sent to the
        queue (from a worker, each at most once); other warnings show as before."""
        previous, sent = warnings.showwarning, set()

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            if not issubclass(category, AudioConversionWarning):
                previous(message, category, filename, lineno, file, line)
            elif os.getpid() == self._owner:
                self._say(str(message))
            elif str(message) not in sent:
                sent.add(str(message))
                self._queue.put(str(message))

        warnings.showwarning = show

    def flush(self) -> None:
        """Log the notes received since the last flush that were not said before."""
        while not self._queue.empty():
            self._say(self._queue.get())

    def _say(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            log.warning("note: %s", message)

    @contextmanager
    def collecting(self) -> Iterator[ConversionNotes]:
        """Install in this process for the duration of the block (the workers' notes flushed at its end)."""
        with warnings.catch_warnings():
            warnings.simplefilter("always", AudioConversionWarning)  # `install` keeps each once
            self.install()
            try:
                yield self
            finally:
                self.flush()
