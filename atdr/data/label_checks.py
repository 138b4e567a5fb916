"""Label sanity checks, run by each stage where the data is first known: every class scored must
be learnable, and a label that is probably a typo must not silently become a class.

- A label with clips in valid or eval but no readable training clip is an error (`atdr split`,
  which makes sure of the opposite, and `atdr train`, whose datafiles may be written by hand): the
  model cannot learn it, and its scores would mean nothing (one lucky eval clip scores AP 1.000).
- A label none of whose listed clips can be read is an error at `atdr split`, which sees every
  list; a warning at `atdr prep`, which does not know whether its list is for training.
- A label with training clips but none in eval is a warning: it is learnt but not scored.
- A label that looks like a typo of another is a warning (`atdr link`, where a class list is
  built from the labels used): used by one or two clips and one edit (a character changed, added
  or dropped, or two swapped) from a label used three times as often, or from an AudioSet id when
  it is not one itself. A rare label is legitimate, so this only warns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from atdr.data.labels import audioset_labels
from atdr.errors import AtdrError

if TYPE_CHECKING:
    from atdr.data.prep import Prepared

LabelSets = Iterable[Sequence[str]]

TYPO_MAX_CLIPS = 2  # a label used by more clips is taken as meant
TYPO_RATIO = 3  # ... and one edit from a label used at least this many times as often is suspected


def check_learnable(splits: Mapping[str, LabelSets]) -> str | None:
    """Raise `AtdrError` if a label has clips in valid or eval (`splits`' other keys) but none in
    `splits["train"]`; return a warning naming the labels trained but not in eval (None if none)."""
    counts = {name: Counter(m for labels in sets for m in labels) for name, sets in splits.items()}
    train = counts.pop("train")
    unlearnable = sorted({m for c in counts.values() for m in c} - set(train))
    if unlearnable:
        where = {m: ", ".join(f"{c[m]} in {name}" for name, c in counts.items() if c[m]) for m in unlearnable}
        raise AtdrError(f"{_some([f'{m!r} ({where[m]})' for m in unlearnable], 'label')} "
                        f"{'has' if len(unlearnable) == 1 else 'have'} no readable training clip: a class without one "
                        "cannot be learnt, and its scores would mean nothing (one lucky eval clip scores AP 1.000); "
                        "add training clips, or fix the label in the segment list if it is a typo")
    unscored = sorted(set(train) - set(counts.get("eval", ())))
    if not unscored:
        return None
    return (f"{_some([f'{m!r} ({train[m]} in train)' for m in unscored], 'label')} "
            f"{'has' if len(unscored) == 1 else 'have'} no eval clip: learnt but not scored (mAP skips "
            f"{'it' if len(unscored) == 1 else 'them'})")


def unreadable_labels(prepared: Prepared) -> str | None:
    """The labels of prepared segment lists none of whose listed clips is readable, in one
    phrase with the first such clip and why (None if none)."""
    readable = {m for clip in prepared.clips for m in clip.labels}
    why = {s: "no file" for s in prepared.missing} | {u.segment: u.problem for u in prepared.unreadable}
    listed = Counter(m for s in why for m in s.labels)
    lost = sorted(set(listed) - readable)
    if not lost:
        return None
    first = next(s for s in why if lost[0] in s.labels)
    return (f"{_some([f'{m!r} ({listed[m]} listed)' for m in lost], 'label')} "
            f"{'has' if len(lost) == 1 else 'have'} no readable clip (e.g. {first.ytid}: {why[first]})")


def suspected_typos(counts: Mapping[str, int]) -> list[str]:
    """A warning for each label that looks like a typo of another (see the module's doc), given
    how many clips use each label."""
    audioset = audioset_labels()
    warnings = []
    for label, n in sorted(counts.items()):
        if label in audioset.index or n > TYPO_MAX_CLIPS or len(label) < 3:
            continue
        frequent = [m for m, k in counts.items() if k >= TYPO_RATIO * n]
        match = next((m for m in sorted({*frequent, *audioset.mids}) if _one_edit_apart(label, m)), None)
        if match is None:
            continue
        about = [audioset.names[audioset.index[match]]] if match in audioset.index else []
        about += [f"{counts[match]} clips"] if counts.get(match) else []
        warnings.append(f"label {label!r} ({n} clip{'s' * (n > 1)}) looks like a typo of {match!r} "
                        f"({', '.join(about)}); as written it becomes a class of its own")
    return warnings


def _one_edit_apart(a: str, b: str) -> bool:
    """Whether `b` is `a` with one character changed, added or dropped, or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    if len(a) != len(b):
        short, long = sorted((a, b), key=len)
        return short[i:] == long[i + 1:]
    return a[i + 1:] == b[i + 1:] or (a[i + 2:] == b[i + 2:] and a[i:i + 2] == b[i:i + 2][::-1])


def _some(items: list[str], noun: str, shown: int = 3) -> str:
    """`noun` and the first `shown` items, then how many more: one line however many there are."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return f"{noun}{'s' * (len(items) > 1)} {', '.join(items[:shown])}{more}"
