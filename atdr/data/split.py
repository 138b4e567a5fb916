"""Splitting one set of segments into train, valid and eval; nested training subsets for the
data-efficiency analysis.

The split is stable: a clip's subset follows from a hash of its id, its start and the seed (its
position in [0, 1): train below `1 - valid - eval`, then valid, then eval), not from the other
clips, so adding clips moves no clip already listed and removing clips moves none of the others.
A label's count in each subset is then binomial: of its n clips, n * share give or take
sqrt(n * share * (1 - share)); no split that keeps every clip in place can do better.

Two exceptions, counting readable clips only, are the only moves an edit can cause:
- Every label is learnable: a label none of whose readable clips hashed into train has its
  readable clip of lowest position moved there. That clip moves back when its label gains a
  readable clip of lower position; another moves in when the label loses its only one in train.
- A list of a few dozen clips may leave valid or eval empty: it gets the readable clip nearest to
  its range that can be spared (not the only one of its subset, nor one a label needs in train).
Eval gets no guarantee per label: a label with n clips has none there with probability
(1 - eval)^n, and is then not scored.

The nested subsets of the data-efficiency analysis stay Sechidis et al.'s iterative
stratification (ECML PKDD 2011, from the `iterative-stratification` package), which gives every
subset its share of every label up to a clip: they are cut from one fixed training set (a changed
training set retrains every run anyway), and exact shares matter at small fractions.
"""

from __future__ import annotations

import hashlib
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


def position(segment: Segment, seed: int) -> float:
    """Where a clip falls in [0, 1) for a seed: a hash of its id and start, the same on every
    machine and Python version."""
    key = f"{seed}\0{segment.ytid}\0{float(segment.start)!r}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def split_segments(segments: list[Segment], valid_fraction: float, eval_fraction: float, seed: int = 0,
                   readable: set[Segment] | None = None) -> dict[str, list[Segment]]:
    """`{"train": [...], "valid": [...], "eval": [...]}` holding about `1 - valid - eval`,
    `valid_fraction` and `eval_fraction` of the segments, each in its original order: every
    segment where its position puts it, except that every label with a `readable` segment (all,
    by default) has one in train, and that a subset with a share gets a readable segment (see the
    module's doc)."""
    valid, eval_ = valid_fraction, eval_fraction
    if not (0 <= valid < 1 and 0 < eval_ < 1 and valid + eval_ < 1):
        raise AtdrError(f"need 0 <= valid, 0 < eval and valid + eval < 1 (got valid {valid}, eval {eval_})")
    keys = [(s.ytid, s.start) for s in segments]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise AtdrError(f"segment {dup[0]} at {dup[1]:g} s is listed twice")
    usable = np.array([readable is None or s in readable for s in segments], dtype=bool)
    positions = np.array([position(s, seed) for s in segments])
    bounds = [0.0, 1 - valid - eval_, 1 - eval_, 1.0]  # subset k holds the positions in [bounds[k], bounds[k + 1])
    subset = np.searchsorted(bounds[1:3], positions, side="right")
    lowest: dict[str, int] = {}  # per label, its readable segment of lowest position
    for i in np.flatnonzero(usable)[np.argsort(positions[usable])]:
        for m in segments[i].labels:
            lowest.setdefault(m, int(i))
    anchors = set(lowest.values())
    subset[list(anchors)] = 0
    for k in (1, 2):  # a few clips may leave valid or eval empty: the nearest readable clip that can be spared
        if bounds[k + 1] == bounds[k] or (usable & (subset == k)).any():
            continue
        counts = np.bincount(subset[usable], minlength=3)
        spare = [i for i in np.flatnonzero(usable) if i not in anchors and counts[subset[i]] > 1]
        if not spare:
            raise AtdrError(f"{usable.sum()} readable clips are too few to split into train, valid and eval")
        subset[min(spare, key=lambda i: max(bounds[k] - positions[i], positions[i] - bounds[k + 1]))] = k
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
