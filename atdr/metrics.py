"""The paper's metrics: mAP, mAUC, d-prime, the original's "average precision/recall", accuracy,
and a bootstrap confidence interval of mAP over clips.

`predictions` and `targets` are `[clips, classes]` arrays; targets may be soft (mixup) but are
binarised at 0.5 for ranking metrics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as scipy_stats
from sklearn import metrics as skm


def d_prime(auc: float) -> float:
    """d' = sqrt(2) * Phi^-1(AUC), as the original."""
    return float(scipy_stats.norm.ppf(auc) * np.sqrt(2.0))


def _binary(targets: np.ndarray) -> np.ndarray:
    return (np.asarray(targets) >= 0.5).astype(np.int8)


def per_class_ap(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """sklearn average precision per class; NaN for classes without a positive clip."""
    y = _binary(targets)
    return np.array([skm.average_precision_score(y[:, k], predictions[:, k]) if y[:, k].any() else np.nan
                     for k in range(y.shape[1])])


def per_class_auc(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """sklearn ROC AUC per class; NaN for classes with only positives or only negatives."""
    y = _binary(targets)
    return np.array([skm.roc_auc_score(y[:, k], predictions[:, k]) if 0 < y[:, k].sum() < len(y) else np.nan
                     for k in range(y.shape[1])])


def _middle_precision_recall(predictions: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """The original's "Avg Precision/Recall": per class, the point at the middle of the
    precision-recall curve subsampled every 1000 points; averaged over classes with positives."""
    y = _binary(targets)
    ps, rs = [], []
    for k in np.flatnonzero(y.any(axis=0)):
        precision, recall, _ = skm.precision_recall_curve(y[:, k], predictions[:, k])
        precision, recall = precision[::1000], recall[::1000]
        ps.append(precision[len(precision) // 2])
        rs.append(recall[len(recall) // 2])
    return float(np.mean(ps)), float(np.mean(rs))


@dataclass(frozen=True)
class Scores:
    mAP: float
    mAUC: float
    d_prime: float
    avg_precision: float
    avg_recall: float
    acc: float  # top-1 accuracy (meaningful for single-label sets)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def evaluate(predictions: np.ndarray, targets: np.ndarray) -> Scores:
    """All summary metrics; mAP over classes with at least one positive, mAUC over classes with both."""
    predictions, targets = np.asarray(predictions, dtype=np.float64), np.asarray(targets)
    if predictions.shape != targets.shape or predictions.ndim != 2:
        raise ValueError(f"predictions {predictions.shape} and targets {targets.shape} must be equal 2-D shapes")
    mauc = float(np.nanmean(per_class_auc(predictions, targets)))
    avg_p, avg_r = _middle_precision_recall(predictions, targets)
    return Scores(
        mAP=float(np.nanmean(per_class_ap(predictions, targets))),
        mAUC=mauc,
        d_prime=d_prime(mauc),
        avg_precision=avg_p,
        avg_recall=avg_r,
        acc=float(np.mean(predictions.argmax(1) == np.asarray(targets).argmax(1))),
    )


def weighted_ap(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision of one class under many clip weightings at once.

    `scores`, `labels`: `[clips]`; `weights`: `[resamples, clips]` (bootstrap counts). Equals
    `sklearn.metrics.average_precision_score(labels, scores, sample_weight=w)` for each row `w`
    (ties in `scores` are one threshold). Returns `[resamples]`, NaN where no positive is drawn.
    """
    order = np.argsort(-scores, kind="stable")
    s, y, w = scores[order], labels[order].astype(np.float64), weights[:, order].astype(np.float64)
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # threshold positions
    tp = np.cumsum(w * y, axis=1)[:, last_of_tie]
    seen = np.cumsum(w, axis=1)[:, last_of_tie]
    positives = tp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(seen > 0, tp / seen, 0.0)
        recall_step = np.diff(tp, axis=1, prepend=0.0)
        return np.where(positives > 0, (recall_step * precision).sum(axis=1) / positives, np.nan)


def bootstrap_map(predictions: np.ndarray, targets: np.ndarray, resamples: int = 1000, seed: int = 0,
                  level: float = 0.95) -> tuple[float, float]:
    """Bias-corrected percentile bootstrap interval of mAP over clips resampled with replacement.

    Resampled mAP runs high on small eval sets (duplicated positives, rare classes dropping out),
    so plain percentiles can miss the estimate; the bias correction (Efron's BC) shifts the
    percentiles by how far the estimate sits from the median of the resampled values.
    """
    y = _binary(targets)
    n = len(y)
    rng = np.random.default_rng(seed)
    classes = np.flatnonzero(y.any(axis=0))
    counts = np.stack([np.ones(n, dtype=np.int64)] + [np.bincount(rng.integers(0, n, n), minlength=n)
                                                      for _ in range(resamples)])
    aps = np.stack([weighted_ap(predictions[:, k], y[:, k], counts) for k in classes], axis=1)
    maps = np.nanmean(aps, axis=1)
    estimate, maps = maps[0], maps[1:]
    below = np.clip(np.mean(maps < estimate) + 0.5 * np.mean(maps == estimate), 1 / (resamples + 1),
                    resamples / (resamples + 1))
    z0, z = scipy_stats.norm.ppf(below), scipy_stats.norm.ppf((1 + level) / 2)
    quantiles = scipy_stats.norm.cdf([2 * z0 - z, 2 * z0 + z]) * 100
    low, high = np.percentile(maps, quantiles)
    return float(low), float(high)
