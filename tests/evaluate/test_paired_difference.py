"""Paired differences over repeats: zero for identical arms, exact for a known gap, two-level intervals that
widen with the spread between repeats, and weights that mean subject multiplicities."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, log_loss

from pipeline.evaluate.paired_difference import (
    GRID_METRICS,
    bootstrap_metric_samples,
    two_level_interval,
    weighted_classification_metrics,
)

Y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
RIGHT = np.eye(2)[Y] * 0.8 + 0.1  # confident and correct
WRONG = np.eye(2)[1 - Y] * 0.8 + 0.1  # confident and wrong


def test_weights_are_subject_multiplicities():
    probabilities = np.random.default_rng(0).dirichlet([1, 1], size=len(Y))
    weights = np.array([2, 0, 1, 1, 3, 1, 0, 1], float)
    repeated = np.repeat(np.arange(len(Y)), weights.astype(int))
    weighted = weighted_classification_metrics(Y, probabilities, weights)
    assert weighted["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(Y[repeated], probabilities[repeated].argmax(1))
    )
    assert weighted["cross_entropy"] == pytest.approx(log_loss(Y[repeated], probabilities[repeated]))
    assert set(weighted) == set(GRID_METRICS)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_every_metric_equals_scikit_learn_with_sample_weights(n_classes):
    from sklearn import metrics as skm

    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 60)
    probabilities = rng.dirichlet(np.ones(n_classes), size=60)
    probabilities[:6, :] = probabilities[0]  # ties
    weights = rng.integers(0, 4, 60).astype(float)
    ours = weighted_classification_metrics(y, probabilities, weights)
    labels = list(range(n_classes))
    predicted = probabilities.argmax(1)
    auc = (
        skm.roc_auc_score(y, probabilities[:, 1], sample_weight=weights)
        if n_classes == 2
        else skm.roc_auc_score(y, probabilities, multi_class="ovr", labels=labels, sample_weight=weights)
    )
    assert ours["auc"] == pytest.approx(auc)
    assert ours["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, predicted, sample_weight=weights))
    assert ours["f1"] == pytest.approx(
        skm.f1_score(y, predicted, labels=labels, average="macro", sample_weight=weights, zero_division=0)
    )
    assert ours["cross_entropy"] == pytest.approx(skm.log_loss(y, probabilities, labels=labels, sample_weight=weights))


def test_identical_arms_differ_by_exactly_zero_and_a_known_gap_is_exact():
    groups = np.arange(len(Y))
    a = bootstrap_metric_samples(Y, RIGHT, groups, n_resamples=200, seed=3)
    b = bootstrap_metric_samples(Y, RIGHT.copy(), groups, n_resamples=200, seed=3)
    c = bootstrap_metric_samples(Y, WRONG, groups, n_resamples=200, seed=3)
    for metric in GRID_METRICS:
        assert two_level_interval([a[metric] - b[metric]]) == (0.0, 0.0)  # same resamples: paired
    assert two_level_interval([a["balanced_accuracy"] - c["balanced_accuracy"]]) == (1.0, 1.0)
    low, high = two_level_interval([a["cross_entropy"] - c["cross_entropy"]])
    assert low == pytest.approx(high) == pytest.approx(np.log(0.1) - np.log(0.9))


def test_the_interval_spans_the_spread_between_repeats():
    steady = [np.full(100, 0.1), np.full(100, 0.1), np.full(100, 0.1)]
    assert two_level_interval(steady) == pytest.approx((0.1, 0.1))
    spread = [np.full(100, -0.2), np.full(100, 0.1), np.full(100, 0.4)]
    low, high = two_level_interval(spread, n_resamples=2000)
    assert low < 0.0 < high and low >= -0.2 - 1e-9 and high <= 0.4 + 1e-9  # repeats disagree: it covers zero
    one = two_level_interval([np.linspace(-1, 1, 101)], n_resamples=4000)
    assert one[0] == pytest.approx(-0.95, abs=0.03) and one[1] == pytest.approx(0.95, abs=0.03)


def test_a_subject_scanned_twice_is_resampled_as_one():
    groups = np.array(["s0", "s0", "s1", "s2", "s3", "s4", "s5", "s6"])
    samples = bootstrap_metric_samples(Y, RIGHT, groups, n_resamples=50, seed=0)
    assert np.allclose(samples["balanced_accuracy"], 1.0) and len(samples["auc"]) == 50
