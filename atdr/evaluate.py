"""Evaluation reports: metrics with a bootstrap CI, and the per-class AP table with names.

Used by `atdr evaluate` (a run's predictions, or a checkpoint on any datafile) and by
`atdr ensemble` (averaged predictions of several runs).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from atdr.atomic import atomic_path, write_text
from atdr.data.labels import LabelSet
from atdr.errors import AtdrError
from atdr.metrics import bootstrap_map, evaluate, per_class_ap, per_class_auc


def load_predictions(path: Path) -> np.ndarray:
    try:
        return np.load(path)
    except (OSError, ValueError) as e:
        raise AtdrError(f"cannot read predictions {path}: {e}") from None


def score(predictions: np.ndarray, targets: np.ndarray, bootstrap: int, seed: int = 0) -> dict:
    """Summary metrics and, with `bootstrap` > 0 resamples, the 95% CI of mAP."""
    result = evaluate(predictions, targets).as_dict()
    if bootstrap > 0:
        result["mAP_ci95"] = list(bootstrap_map(predictions, targets, bootstrap, seed))
    return result


def describe(metrics: dict, task: str) -> str:
    """One line of a report's metrics; accuracy only for single-label tasks (top-1 accuracy
    means nothing where a clip has several labels)."""
    ci = f" [{metrics['mAP_ci95'][0]:.4f}, {metrics['mAP_ci95'][1]:.4f}]" if "mAP_ci95" in metrics else ""
    line = f"mAP {metrics['mAP']:.4f}{ci}, mAUC {metrics['mAUC']:.4f}, d' {metrics['d_prime']:.3f}"
    return line + (f", acc {metrics['acc']:.4f}" if task == "singlelabel" else "")


def per_class_table(predictions: np.ndarray, targets: np.ndarray, labels: LabelSet) -> pd.DataFrame:
    """One row per class: index, mid, display name, positives, AP, AUC (sorted by AP, best first)."""
    if predictions.shape[1] != len(labels):
        raise AtdrError(f"predictions have {predictions.shape[1]} classes, the class list has {len(labels)}")
    table = pd.DataFrame({
        "index": np.arange(len(labels)),
        "mid": labels.mids,
        "display_name": labels.names,
        "positives": (np.asarray(targets) >= 0.5).sum(axis=0),
        "AP": per_class_ap(predictions, targets),
        "AUC": per_class_auc(predictions, targets),
    })
    return table.sort_values("AP", ascending=False, na_position="last")


def write_report(out: Path, sets: dict[str, np.ndarray], targets: np.ndarray, labels: LabelSet,
                 bootstrap: int, info: dict | None = None) -> dict:
    """Score each named prediction set; write `metrics.json` (plus `info`, e.g. ensemble members)
    and `per_class_<name>.csv` in `out`."""
    metrics: dict = dict(info or {})
    for name, predictions in sets.items():
        if predictions.shape != targets.shape:
            raise AtdrError(f"{name} predictions have shape {predictions.shape}, targets {targets.shape}")
        metrics[name] = score(predictions, targets, bootstrap)
        with atomic_path(out / f"per_class_{name}.csv") as tmp:
            per_class_table(predictions, targets, labels).to_csv(tmp, index=False, float_format="%.6f")
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
