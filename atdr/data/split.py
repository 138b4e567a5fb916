"""Splitting one set of segments into train, valid and eval, stratified over labels; nested
training subsets for the data-efficiency analysis.

Multi-label stratification is Sechidis et al.'s iterative stratification (ECML PKDD 2011, from
the `iterative-stratification` package): the rarest label is placed first, each of its clips in
the subset that still lacks most of that label, so every subset gets about its share of every
label. A label with a single clip goes to the first subset (train); afterwards every label that
has clips but none there gets one moved there, so that the model can learn every class it is
scored on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from iterstrat.ml_stratifiers import IterativeStratification

from atdr.data.segments import Segment
from atdr.errors import AtdrError

SUBSETS = ("train", "valid", "eval")


def label_matrix(label_sets: Sequence[Sequence[str]]) -> np.ndarray:
    """`[items, labels]` booleans: which item has which label id (columns in sorted id order)."""
    mids = sorted({m for labels in label_sets for m in labels})
    column = {m: j for j, m in enumerate(mids)}
    y = np.zeros((len(label_sets), len(mids)), dtype=bool)
    for i, labels in enumerate(label_sets):
        y[i, [column[m] for m in labels]] = True
    return y


def stratify(y: np.ndarray, shares: Sequence[float], seed: int) -> np.ndarray:
    """The subset (0 .. len(shares) - 1) of every row of the label matrix `y`: about `shares` of
    the rows and of every label's rows in each subset, and every label with rows in subset 0.
    Deterministic for a seed."""
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(y))  # ties between equal clips broken at random, not by list order
    subset = np.empty(len(y), dtype=int)
    subset[order] = IterativeStratification(labels=y[order], r=np.asarray(shares, dtype=float), random_state=rng)
    _every_label_in_first(y, subset, len(shares))
    return subset


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
    subset = stratify(label_matrix([s.labels for s in segments]), [1 - valid - eval_, valid, eval_], seed)
    return {name: [s for s, k in zip(segments, subset) if k == i] for i, name in enumerate(SUBSETS)}


def nested_subsets(label_sets: Sequence[Sequence[str]], fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """For each fraction (ascending, each in (0, 1)), the indices (in order) of a subset holding
    about that share of the items and of every label's items; each subset contains the smaller
    ones, and every label that has items has one in the smallest.

    Built as one stratified split into pieces of the successive differences of the fractions, the
    subset of fraction k being pieces 0..k: so every increment is stratified too."""
    fractions = list(fractions)
    if not fractions or any(not 0 < f < 1 for f in fractions) or fractions != sorted(set(fractions)):
        raise AtdrError(f"subset: fractions must be distinct, ascending and between 0 and 1 (got {fractions})")
    pieces = stratify(label_matrix(label_sets), np.diff([0.0, *fractions, 1.0]), seed)
    return [np.flatnonzero(pieces <= k) for k in range(len(fractions))]


def _every_label_in_first(y: np.ndarray, subset: np.ndarray, n_subsets: int) -> None:
    """Move one clip into subset 0 for each label that has clips but none there (rarest first);
    the clip taken is the one with the fewest labels, from the subset holding most of the label."""
    for j in np.argsort(y.sum(axis=0), kind="stable"):
        if y[subset == 0, j].any():
            continue
        holders = np.flatnonzero(y[:, j])
        counts = np.bincount(subset[holders], minlength=n_subsets)
        from_subset = holders[subset[holders] == counts.argmax()]
        subset[from_subset[np.argmin(y[from_subset].sum(axis=1))]] = 0
