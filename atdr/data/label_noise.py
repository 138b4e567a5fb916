"""Label noise injected into a training set, for the label-quality analysis.

At rate `r`, of the `P` positive labels of a set (clip, class pairs), `round(r * P)` are dropped
and as many negatives are flipped to positive: a share `r` of the true labels goes missing and a
share `r` of the labels given is wrong, so every class's label quality (the share of its given
labels that are true, what AudioSet publishes per class) falls, rare classes' most (the flipped
labels are spread uniformly over all negatives). Flips are drawn uniformly among the negatives;
drops uniformly among the positives, except that a clip always keeps one label (a datafile entry
needs one). Everything is a pure function of the seed and the rate, and the noise at a higher
rate is drawn independently of that at a lower one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atdr.data.datafile import Clip
from atdr.data.labels import LabelSet
from atdr.errors import AtdrError


@dataclass(frozen=True)
class NoisyLabels:
    """The clips with their noisy labels, and what was done to them."""

    clips: list[Clip]
    positives: int  # positive labels before
    dropped: int  # positives removed
    flipped: int  # negatives made positive
    given: np.ndarray  # [classes] positive labels after
    correct: np.ndarray  # [classes] of those, true ones

    @property
    def quality(self) -> np.ndarray:
        """Per class, the share of its given labels that are true (NaN without any)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.given > 0, self.correct / np.maximum(self.given, 1), np.nan)


def inject_label_noise(clips: list[Clip], labels: LabelSet, rate: float, seed: int = 0) -> NoisyLabels:
    """`clips` with label noise at `rate` (see the module docstring)."""
    if not 0 <= rate < 1:
        raise AtdrError(f"label-noise: the rate must be in [0, 1) (got {rate})")
    n, k = len(clips), len(labels)
    y = np.zeros((n, k), dtype=bool)
    for i, c in enumerate(clips):
        y[i, [labels.index[m] for m in c.labels]] = True
    positives = np.flatnonzero(y)  # flat indices clip * k + class, ascending
    count = round(rate * len(positives))
    rng = np.random.default_rng([seed, round(rate * 1e6)])
    if count > y.size - len(positives):
        raise AtdrError(f"label-noise: rate {rate} needs {count} negatives to flip, the set has {y.size - len(positives)}")

    flips = np.empty(0, dtype=np.int64)  # uniform among negatives, by rejection (labels are sparse)
    while len(flips) < count:
        draws = rng.integers(0, y.size, 2 * (count - len(flips)) + 16)
        draws = draws[~y.flat[draws]]
        flips = np.concatenate([flips, draws])
        flips = flips[np.sort(np.unique(flips, return_index=True)[1])][:count]  # first draws kept, in order

    # Drops: positives in random order, each taken while its clip keeps a label (flips included).
    labels_left = y.sum(axis=1) + np.bincount(flips // k, minlength=n)
    order = positives[rng.permutation(len(positives))]
    clip = order // k
    by_clip = np.argsort(clip, kind="stable")
    first = np.searchsorted(clip[by_clip], clip[by_clip])  # where each clip's run starts
    rank = np.empty(len(order), dtype=np.int64)
    rank[by_clip] = np.arange(len(order)) - first  # how many of its clip's positives come before
    drops = order[rank < labels_left[clip] - 1][:count]
    if len(drops) < count:
        raise AtdrError(f"label-noise: rate {rate} would leave clips without a label (at most {len(drops)} of "
                        f"{len(positives)} labels can be dropped)")

    noisy = y.copy()
    noisy.flat[flips] = True
    noisy.flat[drops] = False
    out = [Clip(c.wav, tuple(labels.mids[j] for j in np.flatnonzero(row)), c.extra) for c, row in zip(clips, noisy)]
    return NoisyLabels(out, len(positives), len(drops), len(flips), noisy.sum(axis=0), (noisy & y).sum(axis=0))
