"""The subject-level bootstrap: repeated images of one subject are drawn together and count once."""

from __future__ import annotations

import numpy as np

from pipeline.metrics.classification import classification_intervals
from pipeline.metrics.regression import bootstrap_interval
from pipeline.metrics.resampling import ClusterBootstrap


def _mae(a, b):
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b))))


def test_a_resample_keeps_each_subject_whole():
    groups = np.array(["a", "b", "b", "c", "c", "c"])
    idx = ClusterBootstrap(groups).sample(np.random.default_rng(0))
    drawn = groups[idx]
    for subject in set(drawn):
        assert (drawn == subject).sum() % (groups == subject).sum() == 0


def test_triplicated_images_give_the_interval_of_the_subjects():
    rng = np.random.default_rng(1)
    age, predicted = rng.uniform(50, 80, 30), rng.uniform(50, 80, 30)
    subjects = np.arange(30)
    once = bootstrap_interval(age, predicted, _mae, groups=subjects, n_resamples=300)
    thrice = bootstrap_interval(
        np.repeat(age, 3), np.repeat(predicted, 3), _mae, groups=np.repeat(subjects, 3), n_resamples=300
    )
    np.testing.assert_allclose(thrice, once)
    naive = bootstrap_interval(np.repeat(age, 3), np.repeat(predicted, 3), _mae, n_resamples=300)
    assert naive[1] - naive[0] < 0.75 * (once[1] - once[0])  # rows as subjects: overconfident


def test_classification_intervals_by_subject():
    rng = np.random.default_rng(2)
    y = np.arange(40) % 2
    scores = np.clip(np.stack([1 - y, y], axis=1) + rng.normal(0, 0.6, (40, 2)), 0, None) + 1e-3
    scores /= scores.sum(axis=1, keepdims=True)
    once = classification_intervals(y, scores, n_resamples=200, groups=np.arange(40))
    thrice = classification_intervals(
        np.repeat(y, 3), np.repeat(scores, 3, axis=0), n_resamples=200, groups=np.repeat(np.arange(40), 3)
    )
    np.testing.assert_allclose(thrice["balanced_accuracy"], once["balanced_accuracy"])
