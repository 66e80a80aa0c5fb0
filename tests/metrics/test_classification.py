"""Classification metrics: perfect, constant and hand-computed predictors."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.metrics.classification import classification_intervals, classification_metrics


def _onehot(pred, n=2, p=0.9):
    scores = np.full((len(pred), n), (1 - p) / (n - 1))
    scores[np.arange(len(pred)), pred] = p
    return scores


def test_perfect_and_constant_predictors():
    y = np.array([0, 0, 0, 1, 1])
    perfect = classification_metrics(y, _onehot(y))
    assert perfect["accuracy"] == perfect["balanced_accuracy"] == perfect["f1"] == perfect["auc"] == 1.0
    assert perfect["confusion_matrix"] == [[3, 0], [0, 2]]
    constant = classification_metrics(y, _onehot(np.zeros(5, int)))
    assert constant["accuracy"] == pytest.approx(0.6) and constant["balanced_accuracy"] == pytest.approx(0.5)
    assert constant["auc"] == pytest.approx(0.5) and constant["confusion_matrix"] == [[3, 0], [2, 0]]


def test_hand_computed_values():
    y = np.array([0, 0, 1, 1, 1, 1])
    pred = np.array([0, 1, 1, 1, 0, 1])
    m = classification_metrics(y, _onehot(pred))
    # class 0: precision 1/2, recall 1/2; class 1: precision 3/4, recall 3/4
    assert m["accuracy"] == pytest.approx(4 / 6) and m["balanced_accuracy"] == pytest.approx((0.5 + 0.75) / 2)
    assert m["precision"] == pytest.approx((0.5 + 0.75) / 2) and m["recall"] == pytest.approx((0.5 + 0.75) / 2)
    assert m["f1"] == pytest.approx((0.5 + 0.75) / 2)
    three = classification_metrics([0, 1, 2, 2], _onehot(np.array([0, 1, 2, 1]), n=3))
    assert three["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]] and 0 < three["auc"] <= 1


def test_intervals_bracket_the_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    scores = np.clip(_onehot(y, p=0.7) + rng.normal(0, 0.3, (80, 2)), 0, None)
    estimate = classification_metrics(y, scores)
    intervals = classification_intervals(y, scores, n_resamples=300)
    for name in ("accuracy", "balanced_accuracy", "auc"):
        low, high = intervals[name]
        assert low <= estimate[name] <= high and high - low < 0.4
