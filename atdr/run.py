"""Reading a finished (or running) run folder written by `atdr train`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from atdr.config import RunConfig, load_config
from atdr.data.labels import LabelSet
from atdr.errors import AtdrError

# A run's eval-set predictions: best epoch, checkpoint ensemble, weight averaging.
PREDICTIONS = {"best": "predictions.npy", "ensemble": "predictions_ensemble.npy", "wa": "predictions_wa.npy"}


@dataclass(frozen=True)
class Run:
    path: Path
    config: RunConfig

    @property
    def labels(self) -> LabelSet:
        return LabelSet.read(self.config.data.labels)


def read_run(path: str | Path) -> Run:
    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise AtdrError(f"{path} is not a run folder (no config.yaml; create one with atdr train)")
    return Run(path, load_config(path / "config.yaml"))
