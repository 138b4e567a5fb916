"""Splitting one set of segments into train, valid and eval, stratified over labels.

Multi-label stratification is Sechidis et al.'s iterative stratification (ECML PKDD 2011, from
the `iterative-stratification` package): the rarest label is placed first, each of its clips in
the subset that still lacks most of that label, so every subset gets about its share of every
label. A label with a single clip goes to train; afterwards every label that has clips but
none in train gets one moved there, so that the model can learn every class it is scored on.
"""

from __future__ import annotations

import numpy as np
from iterstrat.ml_stratifiers import IterativeStratification

from atdr.data.segments import Segment
from atdr.errors import AtdrError

SUBSETS = ("train", "valid", "eval")


def split_segments(segments: list[Segment], valid_fraction: float, eval_fraction: float,
                   seed: int = 0) -> dict[str, list[Segment]]:
    """`{"train": [...], "valid": [...], "eval": [...]}` holding about `1 - valid - eval`,
    `valid_fraction` and `eval_fraction` of the segments, each in its original order.
    Deterministic for a seed."""
    valid, eval_ = valid_fraction, eval_fraction
    if not (0 <= valid < 1 and 0 < eval_ < 1 and valid + eval_ < 1):
        raise AtdrError(f"split: need 0 <= valid, 0 < eval and valid + eval < 1 (got valid {valid}, eval {eval_})")
    keys = [(s.ytid, s.start) for s in segments]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise AtdrError(f"split: segment {dup[0]} at {dup[1]:g} s is listed twice")
    mids = sorted({m for s in segments for m in s.labels})
    column = {m: j for j, m in enumerate(mids)}
    y = np.zeros((len(segments), len(mids)), dtype=bool)
    for i, s in enumerate(segments):
        y[i, [column[m] for m in s.labels]] = True

    rng = np.random.RandomState(seed)
    order = rng.permutation(len(segments))  # ties between equal clips broken at random, not by list order
    shares = np.array([1 - valid - eval_, valid, eval_])
    subset = np.empty(len(segments), dtype=int)
    subset[order] = IterativeStratification(labels=y[order], r=shares, random_state=rng)
    _every_label_in_train(y, subset)
    return {name: [s for s, k in zip(segments, subset) if k == i] for i, name in enumerate(SUBSETS)}


def _every_label_in_train(y: np.ndarray, subset: np.ndarray) -> None:
    """Move one clip into train for each label that has clips but none in train (rarest first);
    the clip taken is the one with the fewest labels, from the subset holding most of the label."""
    for j in np.argsort(y.sum(axis=0), kind="stable"):
        if y[subset == 0, j].any():
            continue
        holders = np.flatnonzero(y[:, j])
        counts = np.bincount(subset[holders], minlength=3)
        from_subset = holders[subset[holders] == counts.argmax()]
        subset[from_subset[np.argmin(y[from_subset].sum(axis=1))]] = 0
