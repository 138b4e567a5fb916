"""Per-clip sampling weights for balanced training, as the original `gen_weight_file.py`.

label weight = 1000 / (number of clips with that label + 0.01); clip weight = sum of the weights
of its labels. One float per line, in datafile order (`<datafile stem>_weight.csv` by convention).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atdr.atomic import atomic_path
from atdr.data.datafile import Clip
from atdr.data.labels import LabelSet
from atdr.errors import AtdrError


def sample_weights(clips: list[Clip], labels: LabelSet) -> np.ndarray:
    counts = np.zeros(len(labels))
    for clip in clips:
        for mid in clip.labels:
            counts[labels.index[mid]] += 1
    label_weight = 1000.0 / (counts + 0.01)
    return np.array([sum(label_weight[labels.index[m]] for m in clip.labels) for clip in clips])


def write_weights(path: str | Path, weights: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.savetxt(tmp, weights, delimiter=",")


def read_weights(path: str | Path, n_clips: int | None = None) -> np.ndarray:
    """Read a weight file; with `n_clips`, its length must match the datafile's."""
    try:
        weights = np.atleast_1d(np.loadtxt(path, delimiter=",", dtype=np.float64))
    except (OSError, ValueError) as e:
        raise AtdrError(f"cannot read weight file {path}: {e}") from None
    if weights.ndim != 1 or not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise AtdrError(f"{path}: weights must be one finite, non-negative number per line, not all zero")
    if n_clips is not None and len(weights) != n_clips:
        raise AtdrError(f"{path}: {len(weights)} weights for {n_clips} clips (regenerate it with `atdr weights`)")
    return weights
