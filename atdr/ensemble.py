"""Cross-model ensembles: several runs' eval predictions averaged clip by clip.

A run's prediction rows are the eval clips it could read, in datafile order; `predictions_clips.csv`
names the clip of each row (`atdr.run.EvalClip`). Runs that could not read different clips have
different rows, so the ensemble aligns them by clip and averages the clips every member scored;
those some member lacks are left out (and counted). Runs evaluated on different eval sets (another
size, another file at an entry, other labels or classes) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atdr.data.labels import LabelSet
from atdr.errors import AtdrError
from atdr.evaluate import load_predictions
from atdr.run import PREDICTION_CLIPS, PREDICTIONS, EvalClip, read_prediction_clips, read_run, read_summary


@dataclass(frozen=True)
class Scored:
    """A finished run's eval predictions, with the clip of each row."""

    run: Path
    labels: LabelSet
    task: str  # multilabel or singlelabel
    predictions: np.ndarray  # [rows, classes]
    targets: np.ndarray  # [rows, classes]
    clips: list[EvalClip]  # one per row
    eval_clips: int  # the clips of its eval set, read or not

    @classmethod
    def read(cls, run: Path, use: str) -> Scored:
        """`use`: which predictions (`best`, `ensemble` or `wa`: `atdr.run.PREDICTIONS`)."""
        config = read_run(run).config
        predictions, targets = load_predictions(run / PREDICTIONS[use]), load_predictions(run / "targets.npy")
        clips, summary = read_prediction_clips(run), read_summary(run)
        try:
            scored, unreadable = summary["clips"]["eval"], len(summary.get("unreadable", {}).get("eval", []))
        except (KeyError, TypeError) as e:
            raise AtdrError(f"{run / 'summary.json'}: no eval clip count ({e})") from None
        if not len(predictions) == len(targets) == len(clips) == scored:
            raise AtdrError(f"{run}: its outputs disagree ({len(predictions)} rows in {PREDICTIONS[use]}, "
                            f"{len(targets)} in targets.npy, {len(clips)} in {PREDICTION_CLIPS}, {scored} eval clips "
                            "in summary.json): run `atdr train` on it again")
        return cls(run, LabelSet.read(config.data.labels), config.data.task, predictions, targets, clips,
                   scored + unreadable)


@dataclass(frozen=True)
class Ensemble:
    predictions: np.ndarray  # [clips, classes]: the members' predictions averaged
    targets: np.ndarray
    clips: list[EvalClip]  # the clips every member scored, in datafile order
    left_out: list[EvalClip]  # those some member could not read


def average(members: list[Scored]) -> Ensemble:
    """Average the members' predictions of the eval clips they all scored; `AtdrError` unless they
    were evaluated on one eval set with one class list."""
    first = members[0]
    files: dict[int, tuple[str, Path]] = {}  # entry -> its audio file, and a member that scored it
    for m in members:
        if m.labels != first.labels:
            raise AtdrError(f"{m.run} was evaluated with other classes than {first.run}")
        if m.eval_clips != first.eval_clips:
            raise AtdrError(f"{m.run} was evaluated on other clips than {first.run} ({m.eval_clips} eval clips, "
                            f"{first.eval_clips} there)")
        for entry, wav in m.clips:
            seen, where = files.setdefault(entry, (wav, m.run))
            if seen != wav:
                raise AtdrError(f"{m.run} was evaluated on other clips than {where}: its eval clip {entry} is {wav}, "
                                f"not {seen}")
    rows = [{clip.entry: row for row, clip in enumerate(m.clips)} for m in members]
    common = sorted(set.intersection(*(set(r) for r in rows)))
    if not common:
        raise AtdrError(f"no eval clip was read by every one of the {len(members)} runs")
    targets = first.targets[[rows[0][entry] for entry in common]]
    predictions = []
    for m, r in zip(members, rows):
        index = [r[entry] for entry in common]
        if not np.array_equal(m.targets[index], targets):
            raise AtdrError(f"{m.run} was evaluated with other labels than {first.run} on the same clips")
        predictions.append(m.predictions[index])
    clip = {entry: EvalClip(entry, wav) for entry, (wav, _) in files.items()}
    return Ensemble(np.mean(predictions, axis=0), targets, [clip[e] for e in common],
                    [clip[e] for e in sorted(set(files) - set(common))])
