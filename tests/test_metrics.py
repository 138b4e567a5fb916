"""Metrics against scikit-learn and the original formulas."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from atdr.metrics import bootstrap_map, d_prime, evaluate, weighted_ap


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    targets = (rng.random((400, 12)) < 0.15).astype(np.float32)
    targets[:, 11] = 0  # a class without positives: excluded from mAP and mAUC
    predictions = np.clip(rng.random((400, 12)) * 0.7 + targets * 0.3, 0, 1)
    return predictions, targets


def test_map_and_mauc_match_sklearn(scores):
    predictions, targets = scores
    s = evaluate(predictions, targets)
    ap = [average_precision_score(targets[:, k], predictions[:, k]) for k in range(11)]
    auc = [roc_auc_score(targets[:, k], predictions[:, k]) for k in range(11)]
    assert s.mAP == pytest.approx(np.mean(ap), abs=1e-6)
    assert s.mAUC == pytest.approx(np.mean(auc), abs=1e-6)
    assert s.d_prime == pytest.approx(norm.ppf(np.mean(auc)) * np.sqrt(2), abs=1e-9)
    assert 0.0 <= s.acc <= 1.0


def test_d_prime_of_chance_and_of_good_separation():
    assert d_prime(0.5) == pytest.approx(0.0)
    assert d_prime(0.9) == pytest.approx(1.8124, abs=1e-4)


def test_accuracy_for_single_label_targets():
    targets = np.eye(3)[[0, 1, 2, 1]]
    predictions = np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1]])
    assert evaluate(predictions, targets).acc == 0.75


def test_soft_mixup_targets_are_binarised_for_ranking(scores):
    predictions, targets = scores
    soft = targets * 0.8 + 0.05  # positives 0.85, negatives 0.05
    assert evaluate(predictions, soft).mAP == pytest.approx(evaluate(predictions, targets).mAP, abs=1e-12)


def test_weighted_ap_matches_sklearn_sample_weight_with_ties():
    rng = np.random.default_rng(1)
    labels = (rng.random(300) < 0.2).astype(int)
    scores = np.round(rng.random(300) + labels * 0.4, 1)  # many ties
    weights = np.stack([np.bincount(rng.integers(0, 300, 300), minlength=300) for _ in range(6)])
    expected = [average_precision_score(labels, scores, sample_weight=w) for w in weights]
    np.testing.assert_allclose(weighted_ap(scores, labels, weights), expected, atol=1e-12)


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_more_clips(scores):
    predictions, targets = scores
    low, high = bootstrap_map(predictions, targets, resamples=200)
    assert low < evaluate(predictions, targets).mAP < high
    big_low, big_high = bootstrap_map(np.tile(predictions, (4, 1)), np.tile(targets, (4, 1)), resamples=200)
    assert big_high - big_low < high - low
    assert bootstrap_map(predictions, targets, resamples=50, seed=3) == bootstrap_map(predictions, targets, resamples=50, seed=3)
