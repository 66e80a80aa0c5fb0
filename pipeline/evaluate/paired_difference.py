"""Paired differences between two classifiers scored on the same test subjects, over repeated experiments.

An experiment grid repeats each arm R times (a new subject split and new generators per repeat); inside a
repeat every arm is scored on the same test subjects. The difference "arm minus baseline arm" then has two
sources of noise: the repeat (split, training seed) and the finite test set. The interval here is a
two-level bootstrap: resample repeats with replacement, and within each drawn repeat resample its test
subjects (the same subjects for both arms: paired); the statistic is the mean difference over repeats.
With R = 1 it reduces to the paired subject bootstrap of that single repeat.

Metrics are scikit-learn's with ``sample_weight`` (a bootstrap resample is a vector of subject
multiplicities), so resampling never re-indexes the predictions.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from sklearn import metrics as skm

from pipeline.evaluate.resampling import ClusterBootstrap

__all__ = ["GRID_METRICS", "weighted_classification_metrics", "bootstrap_metric_samples", "two_level_interval"]

#: The grid's metrics; cross-entropy is lower-better, the others higher-better.
GRID_METRICS = ("balanced_accuracy", "auc", "f1", "cross_entropy")


def weighted_classification_metrics(y_true: np.ndarray, probabilities: np.ndarray,
                                    weights: np.ndarray | None = None) -> dict[str, float]:
    """Balanced accuracy, AUC (one-vs-rest macro for 3 classes), macro F1 and cross-entropy (nats)."""
    y_true = np.asarray(y_true, int)
    probabilities = np.asarray(probabilities, float)
    labels = list(range(probabilities.shape[1]))
    predicted = probabilities.argmax(axis=1)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a resample may lack a class: the metric is then nan, not a warning flood
        out["balanced_accuracy"] = float(skm.balanced_accuracy_score(y_true, predicted, sample_weight=weights))
        try:
            if len(labels) == 2:
                out["auc"] = float(skm.roc_auc_score(y_true, probabilities[:, 1], sample_weight=weights))
            else:
                out["auc"] = float(skm.roc_auc_score(y_true, probabilities, multi_class="ovr", labels=labels,
                                                     sample_weight=weights))
        except ValueError:
            out["auc"] = float("nan")
        out["f1"] = float(skm.f1_score(y_true, predicted, labels=labels, average="macro", sample_weight=weights,
                                       zero_division=0))
        out["cross_entropy"] = float(skm.log_loss(y_true, np.clip(probabilities, 1e-7, 1.0), labels=labels,
                                                  sample_weight=weights))
    return out


def bootstrap_metric_samples(y_true: np.ndarray, probabilities: np.ndarray, groups: Sequence, *,
                             n_resamples: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """The metrics on ``n_resamples`` subject-level resamples (metric -> array of length n_resamples).

    The resamples depend only on ``groups`` and ``seed``: two arms scored on the same subjects with the
    same seed see the same resamples, so their sample-wise difference is the paired bootstrap.
    """
    clusters = ClusterBootstrap(groups)
    rng = np.random.default_rng(seed)
    n = len(np.asarray(y_true))
    samples = {name: np.empty(n_resamples) for name in GRID_METRICS}
    for b in range(n_resamples):
        weights = np.bincount(clusters.sample(rng), minlength=n).astype(float)
        for name, value in weighted_classification_metrics(y_true, probabilities, weights).items():
            samples[name][b] = value
    return samples


def two_level_interval(per_repeat: Sequence[np.ndarray], *, n_resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean over repeats, resampling repeats and then each repeat's inner samples.

    Args:
        per_repeat: one array of inner bootstrap values (e.g. paired differences) per repeat.
    """
    inner = [np.asarray(v, float) for v in per_repeat]
    if not inner or any(len(v) == 0 for v in inner):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    r = len(inner)
    values = np.empty(n_resamples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw of only undefined values (e.g. AUC) is nan
        for b in range(n_resamples):
            drawn = rng.integers(0, r, r)
            values[b] = np.nanmean([inner[k][rng.integers(0, len(inner[k]))] for k in drawn])
    tail = 100 * (1 - level) / 2
    if np.isnan(values).all():
        return float("nan"), float("nan")
    return float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))
